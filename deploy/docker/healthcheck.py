"""The image's HEALTHCHECK: GET /healthz on the gateway's HTTP port, with nothing but Python.

Exits 0 when the gateway answers 200, 1 otherwise. The address is COMMSGW_HTTP_ADDR's (a wildcard
host is asked on loopback); https when COMMSGW_HTTP_TLS_CERT is set, without verifying the
certificate: the question is only whether the process in this container answers. Liveness, not
readiness: /readyz (Graph tokens, event log) is for load balancers and Kubernetes.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

DEFAULT_HTTP_ADDR = "0.0.0.0:8080"  # the image's COMMSGW_HTTP_ADDR
TIMEOUT_S = 2.0


def healthz_url(environ: Mapping[str, str]) -> str:
    host, _, port = environ.get("COMMSGW_HTTP_ADDR", DEFAULT_HTTP_ADDR).rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if environ.get("COMMSGW_HTTP_TLS_CERT") else "http"
    return f"{scheme}://{shown}:{port}/healthz"


def main(environ: Mapping[str, str]) -> int:
    url = healthz_url(environ)
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]  # no proxy
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=TIMEOUT_S) as resp:
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
