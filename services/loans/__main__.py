"""`python -m services.loans`: serve the loans v1 contract (see api.py)."""

from services.loans.api import setup
from services.platform.app import run_service

if __name__ == "__main__":
    run_service("loans", setup)
