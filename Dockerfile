# One image for the rate limiter and the six services; compose.yaml picks the
# module with `command: python -m services.<name>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app:/app/gen

WORKDIR /app

# Dependencies first, pinned by the same constraints as the local virtualenv,
# so a code change does not reinstall them.
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

COPY services ./services
COPY gen ./gen
COPY migrations ./migrations
COPY devstack ./devstack

# Never run as root; the shared secrets volume is created owned by this user.
RUN useradd --system --uid 10001 --home-dir /app fintech \
    && mkdir -p /run/fintech/secrets \
    && chown -R fintech /run/fintech
USER fintech
