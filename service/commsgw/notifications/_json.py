"""The msgspec codecs the notification parser shares.

A decoder of any JSON value, the encoder with object keys sorted (canonical JSON: the dedup
digests, numbers as JSON text) and the errors msgspec raises on bad input.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = ["ANY_DECODER", "DECODE_ERRORS", "SORTED_ENCODER"]

ANY_DECODER: Final = msgspec.json.Decoder()
SORTED_ENCODER: Final = msgspec.json.Encoder(order="sorted")

# Errors msgspec raises on bad input: DecodeError/ValidationError, UnicodeDecodeError (a
# ValueError) for invalid UTF-8 inside strings, RecursionError for too-deep nesting.
DECODE_ERRORS: Final = (msgspec.MsgspecError, ValueError, RecursionError)
