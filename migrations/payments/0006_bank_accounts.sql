-- Our customers' account numbers (conta), so that a TED can name one of them
-- and settle on-us (services/payments/domain/bank_account.py). Assigned from a
-- sequence when the customer first asks for their details; the check digit is
-- computed, not stored. One number per customer, never reused.
CREATE SEQUENCE bank_account_numbers MINVALUE 1 MAXVALUE 999999999 NO CYCLE;
CREATE TABLE bank_accounts (
    user_id    text        PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 64),
    number     bigint      NOT NULL UNIQUE CHECK (number BETWEEN 1 AND 999999999),
    created_at timestamptz NOT NULL DEFAULT now()
);
