"""PSP simulator: PIX/TED payouts, PIX charges (cob), card charges, webhooks, settlement report."""
