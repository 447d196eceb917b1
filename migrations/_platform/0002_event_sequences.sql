-- The last envelope.subject_sequence given to each aggregate (the envelope's
-- `subject`, e.g. "users/123"), so consumers can detect gaps and reordering.
-- add_event takes the next number with an upsert in the event's transaction:
-- the row lock orders two transactions writing events about one aggregate,
-- and a rolled-back transaction gives its number back.
CREATE TABLE {schema}.event_sequences (
    subject text   PRIMARY KEY CHECK (length(subject) BETWEEN 1 AND 512),
    last    bigint NOT NULL CHECK (last > 0)
);
