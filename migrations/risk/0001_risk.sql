-- Risk's own tables (Open Finance consents and imported statements, credit
-- decisions). Applied by services.platform.migrate with search_path = risk.
--
-- PII: the customer's CPF (sent to the bank when a consent is created) is
-- stored only as AES-GCM ciphertext (services.platform.crypto.FieldCipher)
-- next to its keyed HMAC for look-ups. Scorecard versions are not stored
-- here: they are served from services/risk/models/*.json, and every decision
-- keeps the version it used.

-- A data-sharing consent at one data holder (consents API v3).
CREATE TABLE consents (
    id                uuid        PRIMARY KEY,
    user_id           text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    data_holder       text        NOT NULL CHECK (length(data_holder) BETWEEN 1 AND 128),
    permissions       text[]      NOT NULL CHECK (cardinality(permissions) BETWEEN 1 AND 32),
    expire_at         timestamptz NOT NULL,
    state             text        NOT NULL CHECK (state IN
        ('AWAITING_AUTHORISATION','AUTHORISED','REJECTED','REVOKED','EXPIRED')),
    bank_consent_id   text        NOT NULL CHECK (length(bank_consent_id) BETWEEN 1 AND 256),
    authorisation_uri text        NOT NULL DEFAULT '',
    -- CSRF `state` of the authorisation redirect; AuthoriseConsent must echo it.
    redirect_state    text        NOT NULL,
    cpf_ciphertext    bytea       NOT NULL,
    cpf_hash          bytea       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX consents_bank_consent_id ON consents (bank_consent_id);
-- ListConsents: the caller's consents, newest first.
CREATE INDEX consents_user_created ON consents (user_id, created_at DESC, id DESC);

-- LGPD record: every state a consent entered, who caused it, when, and the
-- permissions/expiry in force at that moment. Append-only by convention
-- (the service only ever inserts).
CREATE TABLE consent_history (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consent_id   uuid        NOT NULL REFERENCES consents (id),
    state        text        NOT NULL,
    actor        text        NOT NULL CHECK (actor IN ('customer','bank','system')),
    reason       text        NOT NULL DEFAULT '',
    performed_by text        NOT NULL,
    permissions  text[]      NOT NULL,
    expire_at    timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX consent_history_consent ON consent_history (consent_id, id);

CREATE TABLE statement_imports (
    id                    uuid        PRIMARY KEY,
    consent_id            uuid        NOT NULL REFERENCES consents (id),
    user_id               text        NOT NULL,
    from_date             date        NOT NULL,
    to_date               date        NOT NULL CHECK (to_date >= from_date),
    state                 text        NOT NULL CHECK (state IN
        ('RUNNING','WAITING_PROVIDER','SUCCEEDED','FAILED')),
    accounts_imported     integer     NOT NULL DEFAULT 0,
    transactions_imported bigint      NOT NULL DEFAULT 0,
    transactions_skipped  bigint      NOT NULL DEFAULT 0,
    pages_fetched         integer     NOT NULL DEFAULT 0,
    failure_reason        text        NOT NULL DEFAULT '',
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz
);
CREATE INDEX statement_imports_user_created ON statement_imports (user_id, created_at DESC, id DESC);
CREATE INDEX statement_imports_consent ON statement_imports (consent_id, created_at DESC);

-- Pages an import has stored: an activity retried after its commit finds its
-- page here and does not count the same transactions twice.
CREATE TABLE import_pages (
    import_id    uuid    NOT NULL REFERENCES statement_imports (id),
    resource     text    NOT NULL,  -- 'accounts' or the account id
    page         integer NOT NULL CHECK (page >= 1),
    PRIMARY KEY (import_id, resource, page)
);

-- Accounts read from the bank, per customer (a later consent at the same
-- bank finds the same account ids).
CREATE TABLE of_accounts (
    user_id       text        NOT NULL,
    account_id    text        NOT NULL CHECK (length(account_id) BETWEEN 1 AND 100),
    consent_id    uuid        NOT NULL REFERENCES consents (id),
    brand_name    text        NOT NULL DEFAULT '',
    company_cnpj  text        NOT NULL DEFAULT '',
    account_type  text        NOT NULL DEFAULT '',
    currency      text        NOT NULL DEFAULT 'BRL',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, account_id)
);

-- Transactions read from the bank. The key makes a re-import (same or a
-- later consent) add nothing twice.
CREATE TABLE of_transactions (
    user_id        text        NOT NULL,
    account_id     text        NOT NULL,
    transaction_id text        NOT NULL CHECK (length(transaction_id) BETWEEN 1 AND 100),
    consent_id     uuid        NOT NULL REFERENCES consents (id),
    import_id      uuid        NOT NULL REFERENCES statement_imports (id),
    booked_at      timestamptz NOT NULL,
    amount_minor   bigint      NOT NULL,  -- signed: credit > 0, debit < 0
    currency       text        NOT NULL,
    type           text        NOT NULL,
    description    text        NOT NULL DEFAULT '',
    counterparty   text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, account_id, transaction_id),
    FOREIGN KEY (user_id, account_id) REFERENCES of_accounts (user_id, account_id)
);
-- Score reads one customer's last 12 months.
CREATE INDEX of_transactions_user_booked ON of_transactions (user_id, booked_at);

-- Credit decisions with every input, so ReplayDecision recomputes them.
CREATE TABLE decisions (
    id                     uuid        PRIMARY KEY,
    user_id                text        NOT NULL,
    reference              text        NOT NULL DEFAULT '',
    requested_amount_minor bigint      NOT NULL CHECK (requested_amount_minor > 0),
    currency               text        NOT NULL,
    term_months            integer     NOT NULL CHECK (term_months BETWEEN 1 AND 120),
    decided_on             date        NOT NULL,  -- the `today` the rules used
    model_version          text        NOT NULL,
    applicant              jsonb       NOT NULL,
    features               jsonb       NOT NULL,
    outcome                text        NOT NULL CHECK (outcome IN
        ('APPROVED','DECLINED','APPROVED_REDUCED')),
    probability_of_default text        NOT NULL,
    score                  integer     NOT NULL CHECK (score BETWEEN 0 AND 1000),
    band                   text        NOT NULL,
    max_amount_minor       bigint      NOT NULL CHECK (max_amount_minor >= 0),
    monthly_rate           text        NOT NULL,
    annual_rate            text        NOT NULL,
    reasons                jsonb       NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    expire_at              timestamptz NOT NULL
);
CREATE INDEX decisions_created ON decisions (created_at DESC, id DESC);
CREATE INDEX decisions_user_created ON decisions (user_id, created_at DESC, id DESC);
