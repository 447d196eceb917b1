"""Payments's gRPC surface.

Its whole v1 contract is served now, every RPC answering with the platform's
NOT_IMPLEMENTED error (services/skeleton.py); the handlers come with the Payments issue.
"""

from services.skeleton import contract_only_setup

setup = contract_only_setup("payments")
