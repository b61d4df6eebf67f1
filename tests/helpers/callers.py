"""A callers file (who may call the gateway, with which token or certificate) and the bearer
tokens of its callers."""

from __future__ import annotations

import json
import pathlib

from commsgw.server._callers import hash_token

OTHER_TENANT = "99999999-9999-9999-9999-999999999999"
TOKENS = {
    "canceller": "tok-canceller-7f3a",
    "watcher": "tok-watcher-19c2",
    "recorder": "tok-recorder-55d0",
    "other-tenant": "tok-other-tenant-0b1e",
}


def callers_file(folder: pathlib.Path) -> pathlib.Path:
    doc = {
        "callers": [
            {"name": "canceller", "token_sha256": hash_token(TOKENS["canceller"]),
             "permissions": ["calls.cancel"]},
            {"name": "watcher", "token_sha256": hash_token(TOKENS["watcher"]),
             "permissions": ["operations.watch"]},
            {"name": "recorder", "token_sha256": hash_token(TOKENS["recorder"]),
             "permissions": ["operations.watch", "recordings.read", "calls.cancel"]},
            {"name": "other-tenant", "token_sha256": hash_token(TOKENS["other-tenant"]),
             "permissions": ["operations.watch", "calls.cancel"], "tenants": [OTHER_TENANT]},
            {"name": "svc-mtls", "cert_names": ["svc-mtls.internal"],
             "permissions": ["operations.watch"]},
        ]
    }  # fmt: skip
    path = folder / "callers.json"
    path.write_text(json.dumps(doc))
    return path


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying the token of caller `name`."""
    return (("authorization", f"Bearer {TOKENS[name]}"),)
