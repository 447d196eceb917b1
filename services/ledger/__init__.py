"""Ledger service: double-entry accounts, transfers and entries; the only home of balances."""
