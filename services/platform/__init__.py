"""Shared platform package used by every service (see docs/CONVENTIONS.md).

Modules are imported explicitly (`from services.platform.errors import AppError`);
this package deliberately re-exports nothing so that importing one piece never
drags in the database, NATS or Temporal clients.
"""
