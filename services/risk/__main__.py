"""`python -m services.risk`: serve the risk v1 contract (see api.py)."""

from services.platform.app import run_service
from services.risk.api import setup

if __name__ == "__main__":
    run_service("risk", setup)
