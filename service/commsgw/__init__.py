"""commsgw: a gRPC gateway in front of Microsoft Graph cloud communications (calls)."""

from commsgw._errors import CommsgwError

__all__ = ["CommsgwError"]
__version__ = "0.1.0"
