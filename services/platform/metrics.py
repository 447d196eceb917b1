"""Prometheus metrics for gRPC servers, exposed on FINTECH_METRICS_PORT at /metrics."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server

RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by method and status code.",
    ["grpc_method", "grpc_code"],
)
RPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Server-side RPC latency, by method and status code.",
    ["grpc_method", "grpc_code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_rpc(method: str, code: str, seconds: float) -> None:
    RPC_HANDLED.labels(method, code).inc()
    RPC_LATENCY.labels(method, code).observe(seconds)


class MetricsServer:
    """The /metrics endpoint on a background thread (prometheus_client's WSGI server)."""

    def __init__(self, host: str, port: int) -> None:
        assert 0 < port <= 65535
        self._server: WSGIServer
        self._server, self._thread = start_http_server(port, addr=host)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
