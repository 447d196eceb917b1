-- The PIX payout's outcome and the counter-offer's expiry on the loans clock.
-- A new migration rather than an edit of 0002, which databases have applied.
--
-- payout_state: NULL (no payout asked, or before this migration), REQUESTING
-- (loans is asking payments; set before the call, so payments' event for a
-- payment loans has not recorded yet is retried, not dropped), REQUESTED
-- (payout_payment names it), SETTLED or FAILED (final, recorded once).
-- offer_expire_time: when an OFFERED loan's counter-offer lapses, by the loans
-- clock (the test clock in tests), swept by the daily job.

ALTER TABLE loans
    ADD COLUMN payout_payment    text CHECK (length(payout_payment) BETWEEN 1 AND 128),
    ADD COLUMN payout_state      text CHECK (payout_state IN
        ('REQUESTING','REQUESTED','SETTLED','FAILED')),
    ADD COLUMN offer_expire_time timestamptz;

-- payments' events name the payment: one loan per payout payment.
CREATE UNIQUE INDEX loans_payout_payment ON loans (payout_payment)
    WHERE payout_payment IS NOT NULL;
-- Payouts in flight of a user (payments' events for an unrecorded payment).
CREATE INDEX loans_payout_requesting ON loans (user_id) WHERE payout_state = 'REQUESTING';
-- The daily sweep of lapsed offers.
CREATE INDEX loans_offer_expiry ON loans (offer_expire_time) WHERE state = 'OFFERED';

-- Loans from before this migration: their recorded payout (the history's
-- detail is the payment's name) and their offers' 7 days from the decision.
UPDATE loans l SET payout_payment = e.detail, payout_state = 'REQUESTED'
FROM loan_events e
WHERE e.loan_id = l.id AND e.event_type = 'loan.payout_requested'
    AND e.detail LIKE 'payments/%' AND length(e.detail) <= 128;
UPDATE loans l SET payout_state = 'FAILED'
WHERE l.payout_state IS NULL AND EXISTS (
    SELECT 1 FROM loan_events e WHERE e.loan_id = l.id AND e.event_type = 'loan.payout_failed');
UPDATE loans SET offer_expire_time = updated_at + interval '7 days' WHERE state = 'OFFERED';
