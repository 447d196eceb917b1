-- The BACEN night limit (20:00-06:00 America/Sao_Paulo): outbound amount per
-- user and night, consumed atomically like daily_usage. A night is named by
-- the date on which it starts (the night of the 5th runs to 06:00 on the 6th).
CREATE TABLE night_usage (
    user_id text   NOT NULL,
    night   date   NOT NULL,
    used    bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, night)
);

-- The night whose usage a payment consumed (NULL: made in daytime, or a
-- service payout that skips the limits), so a failed payment gives it back.
ALTER TABLE payments ADD COLUMN limit_night date;

-- Test clock: seconds added to "now" when FINTECH_PAYMENTS_TEST_CLOCK=1 (never
-- in production, where this table is ignored). One row.
CREATE TABLE test_clock (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    offset_seconds  bigint  NOT NULL DEFAULT 0
        CHECK (offset_seconds BETWEEN -632448000 AND 632448000)
);
INSERT INTO test_clock (id, offset_seconds) VALUES (true, 0);
