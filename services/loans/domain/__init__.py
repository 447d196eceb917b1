"""Loans domain rules (pure, no I/O): they arrive with the Loans issue."""
