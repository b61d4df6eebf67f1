"""commsgw_client: the Python client library of the commsgw gateway (graphcomms.v1).

:class:`GatewayClient` (asyncio) and :class:`SyncGatewayClient` (blocking) have a method per RPC
of the calls API (``create_call``, ``answer_call``, ``play_prompt``, ``record_response``,
``invite_participants``, ``get_operation``, ``wait_operation``, ...). The media methods take
``wait=True`` to return the operation once it is COMPLETED or FAILED (WaitOperation), as one
call. The watch resumes by itself with its last token after a disconnect, a replica restart or
a SUBSCRIBER_TOO_SLOW cut, so no event is lost::

    import asyncio
    from commsgw_client import GatewayClient, OperationNotDoneError, ResumeTokenExpiredError

    async def main() -> None:
        call_id = "ee061b95-d4ca-47f9-a209-b6e208004b17"
        uri = "https://cdn.example/hello.wav"
        async with GatewayClient("127.0.0.1:50051") as gw:
            try:
                op = await gw.play_prompt(call_id, [uri], wait=True)   # the terminal Operation
                print(op.status, op.result_info.code)
            except OperationNotDoneError as err:  # the timeout ran out first
                print("still", err.operation and err.operation.status)
            await gw.cancel_media_processing(call_id)
            watch = gw.watch_operations(call_ids=[call_id])
            try:
                async for r in watch:
                    print(r, watch.resume_token)
            except ResumeTokenExpiredError:
                ...  # the token is older than the log: restart with include_snapshot=True

    asyncio.run(main())

Errors are :class:`GatewayError` subclasses with ``code``, ``reason`` (the ErrorInfo reason)
and ``graph_request_id``; ``ErrorReason.Name(...)`` gives the gateway's reasons as constants
(``err.reason == ErrorReason.Name(ErrorReason.INVALID_CALL_ID)``); a wait that ran out raises
:class:`OperationNotDoneError` (a DeadlineExceededError) with the last known ``.operation``. The
generated messages are in ``graphcomms.v1.calls_pb2`` and ``graphcomms.v1.call_types_pb2``
(identities, participants, media, tones).
"""

from graphcomms.v1.errors_pb2 import ErrorReason

from ._aio import GatewayClient, OperationWatch
from ._common import RETRYABLE, Prompt, RetryPolicy
from ._errors import (
    AbortedError,
    DeadlineExceededError,
    FailedPreconditionError,
    GatewayError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OperationNotDoneError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ResumeTokenExpiredError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    from_rpc_error,
)
from ._sync import SyncGatewayClient, SyncOperationWatch

__all__ = [
    "RETRYABLE",
    "AbortedError",
    "DeadlineExceededError",
    "ErrorReason",
    "FailedPreconditionError",
    "GatewayClient",
    "GatewayError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OperationNotDoneError",
    "OperationWatch",
    "PermissionDeniedError",
    "Prompt",
    "ResourceExhaustedError",
    "ResumeTokenExpiredError",
    "RetryPolicy",
    "SyncGatewayClient",
    "SyncOperationWatch",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "from_rpc_error",
]
