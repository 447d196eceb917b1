"""A do-nothing LedgerService for the ledger benchmark's ceiling phase.

`python -m bench.noop_ledger` serves CreateTransfers on an ephemeral port
(printed on the first line of stdout) with the least any implementation must
do: decode the request and answer one OK result per transfer, echoing it. No
interceptors, no token check, no database, no writer. Driven by the same
load generator as phase (3), it measures what one Python gRPC server process
and the Python generator reach on this machine before the ledger does any
work: the ceiling for one-transfer-per-request throughput (bench/README.md).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "gen"),
]

from fintech.ledger.v1 import ledger_pb2  # noqa: E402


async def create_transfers(
    request: ledger_pb2.CreateTransfersRequest, context: Any
) -> ledger_pb2.CreateTransfersResponse:
    return ledger_pb2.CreateTransfersResponse(
        results=[
            ledger_pb2.CreateTransferResult(index=i, transfer=t)
            for i, t in enumerate(request.transfers)
        ]
    )


async def serve() -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        create_transfers,
        request_deserializer=ledger_pb2.CreateTransfersRequest.FromString,
        response_serializer=ledger_pb2.CreateTransfersResponse.SerializeToString,
    )
    service = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service, {"CreateTransfers": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve())
