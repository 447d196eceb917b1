-- Reconciliation of PSP settlement reports (docs/PSP_SETTLEMENT_REPORT.md).
--
-- A run stores the report exactly as received (bytes + SHA-256) next to its
-- results, so any item can be traced back to the file line that produced it
-- and a run can be re-derived later. Runs and items are written once, in the
-- transaction of CreateReconciliation, and never updated.

CREATE TABLE reconciliations (
    id                      uuid        PRIMARY KEY,
    source                  text        NOT NULL CHECK (source ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    report_date             date        NOT NULL,
    format                  text        NOT NULL CHECK (format IN ('CSV', 'JSON')),
    -- Importing the same bytes again returns this run (idempotent by content).
    report_sha256           text        NOT NULL UNIQUE CHECK (report_sha256 ~ '^[0-9a-f]{64}$'),
    -- 8 MiB is the gRPC message cap the report arrives under.
    content                 bytea       NOT NULL CHECK (length(content) BETWEEN 1 AND 8388608),
    -- The ledger window the run compared against: [window_start, window_end).
    window_start            timestamptz NOT NULL,
    window_end              timestamptz NOT NULL,
    line_count              integer     NOT NULL CHECK (line_count BETWEEN 0 AND 100000),
    transfer_count          integer     NOT NULL CHECK (transfer_count >= 0),
    duplicate_line_count    integer     NOT NULL CHECK (duplicate_line_count >= 0),
    matched_count           integer     NOT NULL CHECK (matched_count >= 0),
    missing_in_ledger_count integer     NOT NULL CHECK (missing_in_ledger_count >= 0),
    missing_in_report_count integer     NOT NULL CHECK (missing_in_report_count >= 0),
    amount_mismatch_count   integer     NOT NULL CHECK (amount_mismatch_count >= 0),
    -- {"BRL": {"report": n, "ledger": n, "matched": n}} in minor units.
    totals                  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_by              text        NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    created_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (window_start < window_end)
);
-- ListReconciliations: newest first, keyset on (created_at, id).
CREATE INDEX reconciliations_newest ON reconciliations (created_at DESC, id DESC);

CREATE TABLE reconciliation_items (
    reconciliation_id  uuid     NOT NULL REFERENCES reconciliations (id),
    item_no            integer  NOT NULL CHECK (item_no > 0),
    status             text     NOT NULL CHECK (status IN
        ('MATCHED', 'MISSING_IN_LEDGER', 'MISSING_IN_REPORT', 'AMOUNT_MISMATCH')),
    -- Which matching rule decided (domain.reconciliation.MatchRule).
    rule               text     NOT NULL CHECK (rule IN ('DUPLICATE_LINE', 'CURRENCY_DIFFERS',
        'ONE_TO_ONE', 'AGGREGATE', 'NO_TRANSFER', 'NO_LINE', 'SUM_DIFFERS')),
    external_reference text     NOT NULL CHECK (length(external_reference) <= 128),
    report_lines       integer[] NOT NULL DEFAULT '{}',
    psp_references     text[]   NOT NULL DEFAULT '{}',
    -- No foreign key to transfers: an item records what was compared, and a
    -- report line may name nothing of ours.
    transfer_ids       uuid[]   NOT NULL DEFAULT '{}',
    report_amount      bigint   CHECK (report_amount > 0),
    report_currency    text     CHECK (report_currency ~ '^[A-Z]{3}$'),
    ledger_amount      bigint   CHECK (ledger_amount > 0),
    ledger_currency    text     CHECK (ledger_currency ~ '^[A-Z]{3}$'),
    -- For a DUPLICATE_LINE item: the line that first carried the psp_reference.
    duplicate_of_line  integer,
    PRIMARY KEY (reconciliation_id, item_no),
    CHECK ((report_amount IS NULL) = (cardinality(report_lines) = 0)),
    CHECK ((ledger_amount IS NULL) = (cardinality(transfer_ids) = 0)),
    CHECK (status <> 'MATCHED' OR (report_amount = ledger_amount
                                   AND report_currency = ledger_currency)),
    CHECK (status <> 'MISSING_IN_LEDGER' OR cardinality(transfer_ids) = 0),
    CHECK (status <> 'MISSING_IN_REPORT' OR cardinality(report_lines) = 0)
);
-- ListReconciliationItems filtered by status, keyset on item_no.
CREATE INDEX reconciliation_items_status ON reconciliation_items (reconciliation_id, status, item_no);

-- The run reads the ledger transfers booked in the report's day. transfers
-- has no time index (the writer's hot path keeps only what it needs); a BRIN
-- index costs next to nothing on insert because created_at grows with the
-- physical order of the append-only table, and it narrows the day's scan to
-- the pages written that day.
CREATE INDEX transfers_created_at_brin ON transfers USING brin (created_at);
