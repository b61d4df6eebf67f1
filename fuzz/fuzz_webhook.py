"""Coverage-guided fuzzing of the webhook's parser and validator with atheris (not in CI).

    .venv/bin/pip install 'atheris==3.0.0'            # or: pip install -e '.[fuzz]'
    mkdir -p /tmp/corpus && cp fuzz/corpus/* /tmp/corpus/   # atheris adds to the first dir
    .venv/bin/python fuzz/fuzz_webhook.py /tmp/corpus -max_total_time=600 -rss_limit_mb=2048
    .venv/bin/python fuzz/fuzz_webhook.py crash-<sha1>  # replay one finding

Each input is split in two at the first byte 0x00: an Authorization header value and a body.
The body goes through ``parse_notifications`` (what the webhook stores, bounded like the
webhook: at most 1 MiB) and the header through the JWT validator with a fixed key set (no
network). The only outcomes allowed are a result or ``NotificationError`` (the webhook's
400/401); anything else is a crash atheris reports with the input that caused it. Seeds are in
``fuzz/corpus`` (a few real commsNotifications documents and tokens).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports():
    import jwt
    import msgspec

    from commsgw._errors import NotificationError
    from commsgw.graph import Reply
    from commsgw.notifications._jwt import NotificationTokenValidator
    from commsgw.notifications._parse import parse_notifications

import contextlib

from cryptography.hazmat.primitives.asymmetric import rsa

MAX_BODY = 1 << 20
AUDIENCE = "00000000-0000-0000-0000-00000000c11e"
TENANT = "00000000-0000-0000-0000-0000000000aa"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWK = {**msgspec.json.decode(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "k1"}


class _Keys:
    """The key server, in memory (a `commsgw.graph.Sender`): no network while fuzzing."""

    async def send(
        self, method: str, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> Reply:
        doc = {"jwks_uri": "https://keys.test/jwks"} if url.endswith("/openid") else {"keys": [JWK]}
        return Reply(200, {"content-type": "application/json"}, msgspec.json.encode(doc))

    async def aclose(self) -> None:
        return None


LOOP = asyncio.new_event_loop()
VALIDATOR = NotificationTokenValidator(
    openid_config_url="https://keys.test/openid",
    audience=AUDIENCE,
    sender=_Keys(),
)
LOOP.run_until_complete(VALIDATOR.warm())
NOW = datetime.now(UTC)


def one_input(data: bytes) -> None:
    header, _, body = data.partition(b"\x00")
    with contextlib.suppress(NotificationError):
        parse_notifications(body[:MAX_BODY], tenant_id=TENANT, receive_time=NOW)
    auth = header.decode("latin-1")
    with contextlib.suppress(NotificationError):
        LOOP.run_until_complete(VALIDATOR.validate(auth))


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
