"""`python -m services.kyc`: serve the kyc v1 contract (see api.py)."""

from services.kyc.api import setup
from services.platform.app import run_service

if __name__ == "__main__":
    run_service("kyc", setup)
