-- Payments' own tables. Applied by services.platform.migrate with search_path = payments.
-- Money: bigint minor units + currency, never numeric/float. PII (PIX keys,
-- account holders' documents, card tokens) lives only in `instrument_ciphertext`
-- (AES-GCM, services.platform.crypto.FieldCipher); `instrument_public` holds
-- what may be shown (key type, recipient name, masked document, last4).

CREATE TABLE payments (
    id                    uuid        PRIMARY KEY,
    user_id               text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    method                text        NOT NULL CHECK (method IN ('PIX','TED','CARD')),
    direction             text        NOT NULL CHECK (direction IN ('OUTBOUND','INBOUND')),
    amount                bigint      NOT NULL CHECK (amount > 0 AND amount <= 10000000000000),
    currency              text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    fee                   bigint      NOT NULL DEFAULT 0 CHECK (fee >= 0),
    description           text        NOT NULL DEFAULT '' CHECK (length(description) <= 140),
    instrument_ciphertext bytea,
    instrument_public     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state                 text        NOT NULL CHECK (state IN ('PENDING','PROCESSING',
        'REQUIRES_ACTION','SETTLED','FAILED','CANCELLED','PARTIALLY_REFUNDED','REFUNDED')),
    failure_reason        text        NOT NULL DEFAULT '',
    failure_message       text        NOT NULL DEFAULT '',
    on_us                 boolean     NOT NULL DEFAULT false,
    -- Set when the submission to the PSP begins: from then on cancel is refused.
    submitted             boolean     NOT NULL DEFAULT false,
    psp_reference         text        NOT NULL DEFAULT '',
    end_to_end_id         text        NOT NULL DEFAULT '',
    counterparty_user_id  text        NOT NULL DEFAULT '',
    external_reference    text        NOT NULL DEFAULT '' CHECK (length(external_reference) <= 128),
    pix_charge_id         uuid,
    refunded              bigint      NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    -- Business day (America/Sao_Paulo) the payment counts against the daily limit.
    limit_day             date        NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    settled_at            timestamptz
);
-- ListPayments: the caller's payments, newest first (keyset on created_at, id).
CREATE INDEX payments_user_created ON payments (user_id, created_at DESC, id DESC);
CREATE INDEX payments_psp_reference ON payments (psp_reference) WHERE psp_reference <> '';
-- Reconciliation and the chaos test look for payments not yet final.
CREATE INDEX payments_open ON payments (state) WHERE state IN ('PENDING','PROCESSING','REQUIRES_ACTION');

-- Each step of a payment's workflow, with attempts and timestamps.
CREATE TABLE payment_steps (
    payment_id  uuid        NOT NULL REFERENCES payments (id),
    step        text        NOT NULL CHECK (length(step) BETWEEN 1 AND 32),
    seq         smallint    NOT NULL,
    state       text        NOT NULL CHECK (state IN ('PENDING','RUNNING','SUCCEEDED','FAILED',
        'SKIPPED','WAITING_PROVIDER')),
    attempts    integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at    timestamptz,
    last_error  text        NOT NULL DEFAULT '',
    PRIMARY KEY (payment_id, step)
);

-- PIX charges (cob) our customers create to receive money.
CREATE TABLE pix_charges (
    id          uuid        PRIMARY KEY,
    user_id     text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    amount      bigint      NOT NULL CHECK (amount > 0 AND amount <= 10000000000000),
    currency    text        NOT NULL DEFAULT 'BRL',
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 140),
    txid        text        NOT NULL UNIQUE CHECK (txid ~ '^[a-zA-Z0-9]{26,35}$'),
    br_code     text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('ACTIVE','COMPLETED','REMOVED_BY_USER',
        'REMOVED_BY_PSP')),
    payment_id  uuid,
    end_to_end_id text      NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    paid_at     timestamptz
);
CREATE INDEX pix_charges_user_created ON pix_charges (user_id, created_at DESC, id DESC);

-- Every PSP notification, recorded (and deduplicated by the PSP's event id)
-- before it is acknowledged.
CREATE TABLE psp_webhooks (
    event_id     text        PRIMARY KEY CHECK (length(event_id) BETWEEN 1 AND 128),
    type         text        NOT NULL,
    body         jsonb       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    deliveries   integer     NOT NULL DEFAULT 1
);

-- Per-user limits (absent row = the configured defaults).
CREATE TABLE payment_limits (
    user_id     text        PRIMARY KEY,
    per_payment bigint      NOT NULL CHECK (per_payment > 0),
    daily       bigint      NOT NULL CHECK (daily > 0),
    nightly     bigint      NOT NULL CHECK (nightly > 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Outbound amount committed per user and business day; updated with a
-- conditional upsert so that two concurrent payments cannot both pass the limit.
CREATE TABLE daily_usage (
    user_id text   NOT NULL,
    day     date   NOT NULL,
    used    bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (user_id, day)
);
