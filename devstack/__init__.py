"""The local stack: every server from a PyPI wheel, started and stopped by one command."""
