-- Ledger tables (docs/LEDGER.md "Storage") and the chart of system accounts.
--
-- The single batching writer (services/ledger/writer.py) keeps every rule;
-- the CHECK constraints are the second line of defence: a bug that would
-- overdraw a balance or store a non-positive amount aborts the batch instead.

CREATE TABLE accounts (
    id              uuid        PRIMARY KEY,
    owner           text        NOT NULL CHECK (length(owner) BETWEEN 1 AND 128),
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind            text        NOT NULL CHECK (kind IN ('USER_WALLET', 'LOAN_RECEIVABLE',
        'PSP_CLEARING', 'PSP_SETTLEMENT', 'BANK_CASH', 'FEE_REVENUE', 'IOF_PAYABLE',
        'INTEREST_INCOME', 'SUSPENSE', 'LOAN_FUNDING', 'PENALTY_INCOME', 'LOAN_DEFAULTED',
        'LOSS_PROVISION')),
    ledger_code     text        NOT NULL DEFAULT '' CHECK (length(ledger_code) <= 32),
    display_name    text        NOT NULL DEFAULT '' CHECK (length(display_name) <= 100),
    debits_must_not_exceed_credits boolean NOT NULL DEFAULT false,
    credits_must_not_exceed_debits boolean NOT NULL DEFAULT false,
    closed_at       timestamptz,
    debits_posted   bigint      NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  bigint      NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending  bigint      NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending bigint      NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)),
    CHECK (NOT debits_must_not_exceed_credits
           OR debits_posted + debits_pending <= credits_posted),
    CHECK (NOT credits_must_not_exceed_debits
           OR credits_posted + credits_pending <= debits_posted),
    CHECK (closed_at IS NULL OR (debits_pending = 0 AND credits_pending = 0))
);
-- Exactly one wallet per user, however often user.registered is delivered.
CREATE UNIQUE INDEX accounts_one_wallet_per_owner ON accounts (owner) WHERE kind = 'USER_WALLET';
CREATE INDEX accounts_owner ON accounts (owner, id);

CREATE TABLE transfers (
    id                 uuid        PRIMARY KEY,
    debit_account_id   uuid        NOT NULL REFERENCES accounts (id),
    credit_account_id  uuid        NOT NULL REFERENCES accounts (id),
    amount             bigint      NOT NULL CHECK (amount > 0),
    currency           text        NOT NULL,
    kind               text        NOT NULL
        CHECK (kind IN ('POSTED', 'PENDING', 'POST_PENDING', 'VOID_PENDING')),
    pending_id         uuid        REFERENCES transfers (id),
    timeout_seconds    integer     NOT NULL DEFAULT 0 CHECK (timeout_seconds >= 0),
    expires_at         timestamptz,
    linked             boolean     NOT NULL DEFAULT false,
    code               text        NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    external_reference text        NOT NULL DEFAULT '' CHECK (length(external_reference) <= 128),
    description        text        NOT NULL DEFAULT '' CHECK (length(description) <= 512),
    state              text        NOT NULL CHECK (state IN ('PENDING', 'POSTED', 'VOIDED', 'EXPIRED')),
    posted_amount      bigint      CHECK (posted_amount > 0),
    created_at         timestamptz NOT NULL,
    resolved_at        timestamptz,
    journal_seq        bigint      NOT NULL UNIQUE,
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((kind IN ('POST_PENDING', 'VOID_PENDING')) = (pending_id IS NOT NULL)),
    CHECK ((state = 'PENDING') = (kind = 'PENDING' AND resolved_at IS NULL)),
    CHECK (posted_amount IS NULL OR posted_amount <= amount)
);
CREATE INDEX transfers_external_reference ON transfers (external_reference, created_at DESC, id)
    WHERE external_reference <> '';
-- The expiry ticker's scan: only open reservations with a deadline.
CREATE INDEX transfers_due ON transfers (expires_at) WHERE state = 'PENDING' AND expires_at IS NOT NULL;
CREATE INDEX transfers_debit ON transfers (debit_account_id, journal_seq DESC);
CREATE INDEX transfers_credit ON transfers (credit_account_id, journal_seq DESC);
CREATE INDEX transfers_seq ON transfers (journal_seq DESC);
-- One resolution per reservation, enforced by the database too.
CREATE UNIQUE INDEX transfers_one_resolution ON transfers (pending_id) WHERE pending_id IS NOT NULL;

-- One row per account side of every applied operation, with that account's
-- balances right after it (statement running balance, balance as of t).
CREATE TABLE entries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       uuid        NOT NULL REFERENCES accounts (id),
    transfer_id      uuid        NOT NULL REFERENCES transfers (id),
    counterparty_id  uuid        NOT NULL REFERENCES accounts (id),
    journal_seq      bigint      NOT NULL,
    side             char(1)     NOT NULL CHECK (side IN ('D', 'C')),
    amount           bigint      NOT NULL CHECK (amount > 0),
    posted_delta     bigint      NOT NULL CHECK (posted_delta >= 0),
    pending_delta    bigint      NOT NULL,
    state            text        NOT NULL CHECK (state IN ('PENDING', 'POSTED', 'VOIDED', 'EXPIRED')),
    debits_posted    bigint      NOT NULL CHECK (debits_posted >= 0),
    credits_posted   bigint      NOT NULL CHECK (credits_posted >= 0),
    debits_pending   bigint      NOT NULL CHECK (debits_pending >= 0),
    credits_pending  bigint      NOT NULL CHECK (credits_pending >= 0),
    created_at       timestamptz NOT NULL,
    UNIQUE (journal_seq, side)
);
CREATE INDEX entries_statement ON entries (account_id, journal_seq DESC);

-- The tamper-evident journal: hash = sha256(prev_hash || record).
CREATE TABLE journal (
    seq         bigint      PRIMARY KEY CHECK (seq > 0),
    transfer_id uuid        NOT NULL,
    record      bytea       NOT NULL,
    prev_hash   bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea       NOT NULL CHECK (length(hash) = 32)
);

-- One row: the last journal record. Every writer transaction locks it first,
-- which serialises ledger writers across processes.
CREATE TABLE journal_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint  NOT NULL CHECK (seq >= 0),
    hash bytea   NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO journal_head (id, seq, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

-- The chart of system accounts (services/ledger/domain/chart.py holds the same ids).
INSERT INTO accounts (id, owner, currency, kind, ledger_code, display_name) VALUES
    ('00000000-0000-4000-8000-000000000101', 'system/psp-clearing', 'BRL', 'PSP_CLEARING', '1.1.02', 'PSP clearing'),
    ('00000000-0000-4000-8000-000000000102', 'system/psp-settlement', 'BRL', 'PSP_SETTLEMENT', '1.1.03', 'PSP settlement'),
    ('00000000-0000-4000-8000-000000000103', 'system/bank-cash', 'BRL', 'BANK_CASH', '1.1.01', 'Bank cash'),
    ('00000000-0000-4000-8000-000000000104', 'system/fee-revenue', 'BRL', 'FEE_REVENUE', '3.1.01', 'Fee revenue'),
    ('00000000-0000-4000-8000-000000000105', 'system/iof-payable', 'BRL', 'IOF_PAYABLE', '2.1.02', 'IOF payable'),
    ('00000000-0000-4000-8000-000000000106', 'system/interest-income', 'BRL', 'INTEREST_INCOME', '3.1.02', 'Interest income'),
    ('00000000-0000-4000-8000-000000000107', 'system/penalty-income', 'BRL', 'PENALTY_INCOME', '3.1.03', 'Penalty income'),
    ('00000000-0000-4000-8000-000000000108', 'system/suspense', 'BRL', 'SUSPENSE', '2.1.09', 'Suspense'),
    ('00000000-0000-4000-8000-000000000109', 'system/loan-funding', 'BRL', 'LOAN_FUNDING', '2.2.01', 'Loan funding'),
    ('00000000-0000-4000-8000-000000000110', 'system/loan-receivable', 'BRL', 'LOAN_RECEIVABLE', '1.2.01', 'Loan receivable control'),
    ('00000000-0000-4000-8000-000000000111', 'system/loan-defaulted', 'BRL', 'LOAN_DEFAULTED', '1.2.02', 'Loans defaulted'),
    ('00000000-0000-4000-8000-000000000112', 'system/loss-provision', 'BRL', 'LOSS_PROVISION', '1.2.09', 'Loss provision');
