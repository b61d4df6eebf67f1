"""commsgw_client: the Python client library of the commsgw gateway (graphcomms.v1).

:class:`GatewayClient` (asyncio) and :class:`SyncGatewayClient` (blocking) cancel a call's media
operations and watch what happened to them; the watch resumes by itself with its last token
after a disconnect, a replica restart or a SUBSCRIBER_TOO_SLOW cut, so no event is lost::

    import asyncio
    from commsgw_client import GatewayClient, ResumeTokenExpiredError

    async def main() -> None:
        async with GatewayClient("127.0.0.1:50051") as gw:
            await gw.cancel_media_processing("ee061b95-d4ca-47f9-a209-b6e208004b17")
            watch = gw.watch_operations(call_ids=["ee061b95-d4ca-47f9-a209-b6e208004b17"])
            try:
                async for r in watch:
                    print(r, watch.resume_token)
            except ResumeTokenExpiredError:
                ...  # the token is older than the log: restart with include_snapshot=True

    asyncio.run(main())

Errors are :class:`GatewayError` subclasses with ``code``, ``reason`` (the ErrorInfo reason)
and ``graph_request_id``; ``ErrorReason.Name(...)`` gives the gateway's reasons as constants
(``err.reason == ErrorReason.Name(ErrorReason.INVALID_CALL_ID)``). The generated messages are in
``graphcomms.v1.calls_pb2``.
"""

from graphcomms.v1.errors_pb2 import ErrorReason

from ._aio import GatewayClient, OperationWatch
from ._common import RETRYABLE, RetryPolicy
from ._errors import (
    AbortedError,
    DeadlineExceededError,
    GatewayError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ResumeTokenExpiredError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
)
from ._sync import SyncGatewayClient, SyncOperationWatch

__all__ = [
    "RETRYABLE",
    "AbortedError",
    "DeadlineExceededError",
    "ErrorReason",
    "GatewayClient",
    "GatewayError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OperationWatch",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "ResumeTokenExpiredError",
    "RetryPolicy",
    "SyncGatewayClient",
    "SyncOperationWatch",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
]
