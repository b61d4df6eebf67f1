"""The emulator image's HEALTHCHECK: GET /_emulator/health, TLS verified against its own CA.

Exits 0 when the emulator answers 200, 1 otherwise. The URL is COMMSGW_EMULATOR_URL's (the
image's: https://127.0.0.1:8443) and the CA is emulator-ca.pem in COMMSGW_STATE_DIR (the
image's: /state), the certificate the gateways it serves trust: a healthy emulator is one they
can reach. Nothing but Python.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

DEFAULT_EMULATOR_URL = "https://127.0.0.1:8443"  # the image's COMMSGW_EMULATOR_URL
DEFAULT_STATE_DIR = "/state"  # the image's COMMSGW_STATE_DIR
CA_FILE = "emulator-ca.pem"
TIMEOUT_S = 2.0


def health_url(environ: Mapping[str, str]) -> str:
    base = environ.get("COMMSGW_EMULATOR_URL", DEFAULT_EMULATOR_URL).rstrip("/")
    return f"{base}/_emulator/health"


def ca_path(environ: Mapping[str, str]) -> str:
    return os.path.join(environ.get("COMMSGW_STATE_DIR", DEFAULT_STATE_DIR), CA_FILE)


def main(environ: Mapping[str, str]) -> int:
    url = health_url(environ)
    try:
        context = ssl.create_default_context(cafile=ca_path(environ))
    except OSError as exc:  # no CA yet: the emulator has not written it
        print(f"{ca_path(environ)}: {exc}", file=sys.stderr)
        return 1
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=TIMEOUT_S) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:  # refused, timed out, TLS failure (URLError is an OSError)
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"{url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ))
