-- Returns (devoluções) of our settled outbound payouts, started by the receiving
-- institution and notified by the PSP (`payout.returned`). One row per return,
-- named as in the API Pix by its payout's endToEndId and its own id (an id is
-- unique only within its endToEndId): the dedup key (a return credits the
-- wallet at most once, whatever the number of notifications) and the record
-- of the refused ones (unknown payment, more than is left, ...), which never
-- credit.
CREATE TABLE payout_returns (
    return_id     text        NOT NULL CHECK (length(return_id) BETWEEN 1 AND 64),
    payment_id    uuid,       -- NULL: the PSP named no payment of ours
    end_to_end_id text        NOT NULL DEFAULT '' CHECK (length(end_to_end_id) <= 64),
    -- As notified; 0 when the notification carried no valid amount (refused).
    amount        bigint      NOT NULL CHECK (amount >= 0 AND amount <= 10000000000000),
    state         text        NOT NULL CHECK (state IN ('CREDITED','REFUSED')),
    -- REFUSED: why (RETURN_EXCEEDS_PAYMENT, PAYMENT_NOT_FOUND, ...); CREDITED:
    -- the returning bank's reason code as notified (e.g. MD06).
    reason        text        NOT NULL DEFAULT '' CHECK (length(reason) <= 64),
    event_id      text        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 128),
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (end_to_end_id, return_id)
);
CREATE INDEX payout_returns_payment ON payout_returns (payment_id) WHERE payment_id IS NOT NULL;
