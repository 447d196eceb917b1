"""Payments domain rules (pure, no I/O): they arrive with the Payments issue."""
