-- Entries keyed by (journal_seq, side), without foreign keys; drop a redundant index.
--
-- An operation has exactly one debit and one credit entry, on two different
-- accounts, so journal_seq also names an entry within its account
-- (accounts/{a}/entries/{journal_seq}) and the identity column is not needed.
-- No foreign keys on purpose: the writer inserts entries in the statement
-- after the transfers and accounts it has just written or locked, and the
-- per-row FK triggers cost about a quarter of a 1,000-transfer batch;
-- VerifyLedger recomputes every balance from these rows and reports entries
-- naming a missing transfer or account. A new migration rather than an edit of
-- 0001, which dev and test databases have already applied.

ALTER TABLE entries
    DROP CONSTRAINT entries_account_id_fkey,
    DROP CONSTRAINT entries_transfer_id_fkey,
    DROP CONSTRAINT entries_counterparty_id_fkey,
    DROP CONSTRAINT entries_journal_seq_side_key,
    DROP COLUMN id,
    ADD PRIMARY KEY (journal_seq, side),
    ADD CHECK (account_id <> counterparty_id);

-- transfers' UNIQUE (journal_seq) index already serves newest-first scans.
DROP INDEX transfers_seq;
