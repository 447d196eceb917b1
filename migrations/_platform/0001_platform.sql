-- Tables every service schema has. `{schema}` is replaced by the service schema;
-- the migration runs with search_path set to it.

-- Stored first responses of mutating RPCs (services.platform.idempotency).
CREATE TABLE {schema}.idempotency_keys (
    subject       text        NOT NULL,
    method        text        NOT NULL,
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    request_hash  bytea       NOT NULL CHECK (length(request_hash) = 32),
    response      bytea       NOT NULL,
    response_type text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, method, key)
);
-- Old keys are purged by age.
CREATE INDEX idempotency_keys_created_at ON {schema}.idempotency_keys (created_at);

-- Transactional outbox (services.platform.outbox).
CREATE TABLE {schema}.outbox_events (
    id           uuid        PRIMARY KEY,
    subject      text        NOT NULL,
    type         text        NOT NULL,
    payload      bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);
-- The relay only ever scans unpublished rows, oldest first.
CREATE INDEX outbox_events_unpublished
    ON {schema}.outbox_events (created_at) WHERE published_at IS NULL;

-- Events a durable consumer has handled (services.platform.consumer).
CREATE TABLE {schema}.processed_events (
    event_id     text        NOT NULL,
    consumer     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Append-only audit trail (services.platform.audit). The service role gets
-- SELECT+INSERT only; the trigger is the second line of defence.
CREATE TABLE {schema}.audit_logs (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity       text        NOT NULL,
    entity_id    text        NOT NULL,
    action       text        NOT NULL,
    data         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    performed_by text        NOT NULL,
    trace_id     text,
    request_id   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_entity ON {schema}.audit_logs (entity, entity_id, created_at);

CREATE FUNCTION {schema}.audit_logs_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_logs_no_update_delete
    BEFORE UPDATE OR DELETE ON {schema}.audit_logs
    FOR EACH ROW EXECUTE FUNCTION {schema}.audit_logs_append_only();
CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON {schema}.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_logs_append_only();

-- Outbound calls to third parties, PII redacted (services.platform.http_client).
CREATE TABLE {schema}.third_party_calls (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    text        NOT NULL,
    endpoint    text        NOT NULL,
    method      text        NOT NULL,
    request     text,
    response    text,
    status      integer,
    error       text,
    duration_ms integer     NOT NULL CHECK (duration_ms >= 0),
    attempt     integer     NOT NULL CHECK (attempt >= 1),
    trace_id    text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX third_party_calls_provider ON {schema}.third_party_calls (provider, created_at);
