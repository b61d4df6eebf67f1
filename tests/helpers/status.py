"""The rich error details (google.rpc.Status) of a failed RPC."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


def unpack_details(status: status_pb2.Status) -> tuple[Any, Any]:
    """(ErrorInfo, RetryInfo) in `status`'s details, each None when absent."""
    info = retry = None
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
        elif d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            d.Unpack(retry)
    return info, retry


def error_details(err: grpc.aio.AioRpcError) -> tuple[Any, Any]:
    """(ErrorInfo, RetryInfo or None) of `err`; asserts the ErrorInfo is there, in our domain."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    info, retry = unpack_details(status)
    assert info is not None
    assert info.domain == "commsgw"
    return info, retry
