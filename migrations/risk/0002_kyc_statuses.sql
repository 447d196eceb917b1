-- Risk's own read model of each customer's KYC status, fed by the kyc
-- service's events (services/risk/kyc_projection.py). Score reads it instead
-- of asking identity on every decision: no synchronous dependency on another
-- service on the loan path. A customer with no row has never started KYC.
CREATE TABLE kyc_statuses (
    user_id    uuid        PRIMARY KEY,
    status     text        NOT NULL CHECK (status IN
        ('NOT_STARTED','PENDING','WAITING_PROVIDER','IN_REVIEW','APPROVED','DECLINED')),
    event_id   text        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 64),
    updated_at timestamptz NOT NULL DEFAULT now()
);
