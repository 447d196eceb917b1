"""Envoy's global rate-limit service, counters in Redis (see domain.py and limits.yaml)."""
