"""`python -m services.ledger`: serve the ledger v1 contract (see api.py)."""

from services.ledger.api import setup
from services.platform.app import run_service

if __name__ == "__main__":
    run_service("ledger", setup)
