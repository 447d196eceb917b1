"""Payments service: PIX/TED/card payments, their steps, PSP references, webhooks."""
