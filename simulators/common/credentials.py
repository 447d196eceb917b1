"""The OAuth2 client a simulated provider accepts.

In a stack, FINTECH_PROVIDER_CLIENTS_FILE names the `provider_clients.json`
that devstack generates in the secrets dir (the same file the calling service
reads), so the pair is random per stack and never in code. A simulator run on
its own (or a unit test) may set FINTECH_<PROVIDER>_CLIENT_ID/_SECRET, or
falls back to its documented fake pair, which no service knows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def client_credentials(provider: str, default_id: str, default_secret: str) -> tuple[str, str]:
    path = os.environ.get("FINTECH_PROVIDER_CLIENTS_FILE", "").strip()
    if path:
        entry = json.loads(Path(path).read_text())[provider]
        return str(entry["client_id"]), str(entry["client_secret"])
    prefix = f"FINTECH_{provider.upper()}_CLIENT_"
    return (
        os.environ.get(prefix + "ID", default_id),
        os.environ.get(prefix + "SECRET", default_secret),
    )
