"""Login lockout with exponential backoff, per account and per client address.

After FREE_ATTEMPTS consecutive failures every further failure locks the key
for BASE_SECONDS * 2^(extra failures), capped at MAX_LOCK_SECONDS. A success
clears the account's counter. The counter itself forgets after
FAILURE_MEMORY_SECONDS without failures, so a typo a week ago costs nothing.
"""

from __future__ import annotations

FREE_ATTEMPTS = 5
BASE_SECONDS = 30
MAX_LOCK_SECONDS = 3600
FAILURE_MEMORY_SECONDS = 24 * 3600

# A shared NAT (a university, a mobile carrier) puts many people behind one
# address, so the address threshold is higher than the account's.
ADDRESS_FREE_ATTEMPTS = 20


def lock_seconds(consecutive_failures: int, free_attempts: int = FREE_ATTEMPTS) -> int:
    """How long to lock after this many consecutive failures (0 = not locked)."""
    assert consecutive_failures >= 0 and free_attempts >= 1
    if consecutive_failures < free_attempts:
        return 0
    exponent = min(consecutive_failures - free_attempts, 16)  # bounded: 2^16 * 30 s >> cap
    return min(BASE_SECONDS * (2**exponent), MAX_LOCK_SECONDS)
