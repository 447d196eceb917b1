-- Loans' own tables: quotes, loans, installments, payments, history, daily
-- accruals and the test clock. Applied by services.platform.migrate with
-- search_path = loans. Money is bigint centavos; rates are decimal strings.
-- No PII: users are referenced by id, PIX keys are not stored in clear
-- (a PIX key can be a CPF, e-mail or phone: ciphertext + keyed hash).

-- A simulation the customer may accept until it expires (terms = the computed
-- quote: schedule, IOF, fees, CET), as shown.
CREATE TABLE quotes (
    id                 uuid        PRIMARY KEY,
    user_id            text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    principal_minor    bigint      NOT NULL CHECK (principal_minor > 0),
    term_months        int         NOT NULL CHECK (term_months BETWEEN 1 AND 48),
    system             text        NOT NULL CHECK (system IN ('PRICE','SAC')),
    iof_mode           text        NOT NULL CHECK (iof_mode IN ('FINANCED','UPFRONT')),
    disbursement_date  date        NOT NULL,
    first_due_date     date        NOT NULL,
    monthly_rate       text        NOT NULL,
    risk_band          text        NOT NULL,
    risk_decision      text        NOT NULL DEFAULT '',
    max_amount_minor   bigint      NOT NULL CHECK (max_amount_minor >= 0),
    terms              jsonb       NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expire_at          timestamptz NOT NULL
);
CREATE INDEX quotes_expire_at ON quotes (expire_at);

CREATE TABLE loans (
    id                   uuid        PRIMARY KEY,
    user_id              text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    quote_id             uuid        NOT NULL REFERENCES quotes (id),
    state                text        NOT NULL CHECK (state IN ('APPLIED','APPROVED','OFFERED',
        'DECLINED','FUNDING','FUNDED','PAID','DEFAULTED','CANCELLED')),
    requested_principal  bigint      NOT NULL CHECK (requested_principal > 0),
    approved_principal   bigint      NOT NULL DEFAULT 0 CHECK (approved_principal >= 0),
    terms                jsonb       NOT NULL,
    decline_reasons      jsonb       NOT NULL DEFAULT '[]',
    risk_decision        text        NOT NULL DEFAULT '',
    pix_key_ciphertext   bytea,
    receivable_account   text        NOT NULL DEFAULT '',
    wallet_account       text        NOT NULL DEFAULT '',
    funded_on            date,
    defaulted_on         date,
    accrued_through      date,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    fund_time            timestamptz,
    close_time           timestamptz
);
-- A quote is accepted once.
CREATE UNIQUE INDEX loans_quote ON loans (quote_id);
CREATE INDEX loans_user_created ON loans (user_id, created_at DESC, id DESC);
CREATE INDEX loans_created ON loans (created_at DESC, id DESC);
-- The daily accrual walks the loans still owing.
CREATE INDEX loans_repaying ON loans (id) WHERE state IN ('FUNDED','DEFAULTED');

CREATE TABLE installments (
    loan_id                uuid    NOT NULL REFERENCES loans (id),
    number                 int     NOT NULL CHECK (number BETWEEN 1 AND 48),
    due_date               date    NOT NULL,
    period_start           date    NOT NULL,
    amount                 bigint  NOT NULL CHECK (amount >= 0),
    scheduled_interest     bigint  NOT NULL CHECK (scheduled_interest >= 0),
    scheduled_principal    bigint  NOT NULL CHECK (scheduled_principal >= 0),
    interest_due           bigint  NOT NULL CHECK (interest_due BETWEEN 0 AND scheduled_interest),
    principal_due          bigint  NOT NULL CHECK (principal_due BETWEEN 0 AND scheduled_principal),
    fine_due               bigint  NOT NULL DEFAULT 0 CHECK (fine_due >= 0),
    default_interest_due   bigint  NOT NULL DEFAULT 0 CHECK (default_interest_due >= 0),
    fine_charged           boolean NOT NULL DEFAULT false,
    default_interest_exact numeric NOT NULL DEFAULT 0,
    fine_total             bigint  NOT NULL DEFAULT 0 CHECK (fine_total >= 0),
    default_interest_total bigint  NOT NULL DEFAULT 0 CHECK (default_interest_total >= 0),
    paid_amount            bigint  NOT NULL DEFAULT 0 CHECK (paid_amount >= 0),
    interest_waived        bigint  NOT NULL DEFAULT 0 CHECK (interest_waived >= 0),
    paid_at                timestamptz,
    due_soon_notified      boolean NOT NULL DEFAULT false,
    overdue_bucket         text    NOT NULL DEFAULT 'CURRENT',
    PRIMARY KEY (loan_id, number)
);

CREATE TABLE loan_payments (
    id                 uuid        PRIMARY KEY,
    loan_id            uuid        NOT NULL REFERENCES loans (id),
    amount             bigint      NOT NULL CHECK (amount > 0),
    penalties          bigint      NOT NULL CHECK (penalties >= 0),
    interest           bigint      NOT NULL CHECK (interest >= 0),
    principal          bigint      NOT NULL CHECK (principal >= 0),
    interest_discount  bigint      NOT NULL DEFAULT 0 CHECK (interest_discount >= 0),
    payoff             boolean     NOT NULL DEFAULT false,
    paid_on            date        NOT NULL,
    installment_numbers int[]      NOT NULL,
    ledger_transfers   text[]      NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (amount = penalties + interest + principal)
);
CREATE INDEX loan_payments_loan ON loan_payments (loan_id, created_at DESC, id DESC);

-- The backoffice history: every transition, accrual, payment and transfer.
CREATE TABLE loan_events (
    seq               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                uuid        NOT NULL UNIQUE,
    loan_id           uuid        NOT NULL REFERENCES loans (id),
    event_type        text        NOT NULL,
    state             text        NOT NULL,
    actor             text        NOT NULL,
    detail            text        NOT NULL DEFAULT '',
    amount_minor      bigint,
    ledger_transfers  text[]      NOT NULL DEFAULT '{}',
    occur_time        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX loan_events_loan ON loan_events (loan_id, seq);

-- One accrual per loan and calendar day: what makes the daily job restart-safe.
CREATE TABLE accruals (
    loan_id           uuid    NOT NULL REFERENCES loans (id),
    accrual_date      date    NOT NULL,
    fine              bigint  NOT NULL CHECK (fine >= 0),
    default_interest  bigint  NOT NULL CHECK (default_interest >= 0),
    ledger_transfers  text[]  NOT NULL DEFAULT '{}',
    PRIMARY KEY (loan_id, accrual_date)
);

-- Test clock: days added to "today" when FINTECH_LOANS_TEST_CLOCK=1 (never in
-- production, where this table is ignored). One row.
CREATE TABLE test_clock (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    offset_days  int     NOT NULL DEFAULT 0 CHECK (offset_days BETWEEN 0 AND 3650)
);
INSERT INTO test_clock (id, offset_days) VALUES (true, 0);
