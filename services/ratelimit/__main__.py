"""`python -m services.ratelimit`: serve until SIGTERM/SIGINT (env in server.py)."""

import asyncio

from services.ratelimit.server import serve

if __name__ == "__main__":
    asyncio.run(serve())
