"""Clients of third-party providers that more than one service calls."""
