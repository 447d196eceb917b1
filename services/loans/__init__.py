"""Loans service: lending: simulations and quotes, loans, installments."""
