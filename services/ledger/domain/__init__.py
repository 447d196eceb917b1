"""Ledger domain rules (pure, no I/O): they arrive with the Ledger issue."""
