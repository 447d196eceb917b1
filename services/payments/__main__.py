"""`python -m services.payments`: serve the payments v1 contract (see api.py)."""

from services.payments.api import setup
from services.platform.app import run_service

if __name__ == "__main__":
    run_service("payments", setup)
