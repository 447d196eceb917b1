-- CreatePayment no longer starts the payment's workflow inside its own
-- transaction: it commits the payment, then a starter in the process starts
-- the workflow (services/payments/starter.py), and a sweep starts any whose
-- start was lost (the process died between the commit and the start, or
-- Temporal was down). This flag is what the sweep looks for.
-- Payments from before this migration had their workflow started in the
-- creating transaction: they are marked started.
ALTER TABLE payments ADD COLUMN workflow_started boolean NOT NULL DEFAULT true;
ALTER TABLE payments ALTER COLUMN workflow_started SET DEFAULT false;
CREATE INDEX payments_unstarted ON payments (created_at) WHERE NOT workflow_started;
