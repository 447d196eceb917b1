"""The fintech backend's services; `services.platform` is the shared platform package."""
