"""The msgspec codecs the notification parser shares.

A decoder of any JSON value, an encoder keeping key order (one element of a resourceData array
re-encoded as a notification of its own), the encoder with object keys sorted (canonical JSON:
the dedup digests, numbers as JSON text) and the errors msgspec raises on bad input.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = ["ANY_DECODER", "DECODE_ERRORS", "ENCODER", "SORTED_ENCODER"]

ANY_DECODER: Final = msgspec.json.Decoder()
ENCODER: Final = msgspec.json.Encoder()
SORTED_ENCODER: Final = msgspec.json.Encoder(order="sorted")

# Errors msgspec raises on bad input: DecodeError/ValidationError, UnicodeDecodeError (a
# ValueError) for invalid UTF-8 inside strings, RecursionError for too-deep nesting.
DECODE_ERRORS: Final = (msgspec.MsgspecError, ValueError, RecursionError)
