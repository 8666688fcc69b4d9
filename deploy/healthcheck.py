"""The container's health check (deploy/Containerfile's HEALTHCHECK, compose.yaml's): exit 0
when provisiond answers /readyz, i.e. it serves and reaches its database."""

import os
import sys
import urllib.request

url = f"http://127.0.0.1:{os.environ.get('PROVISIOND_PORT', '8000')}/readyz"
try:
    with urllib.request.urlopen(url, timeout=4) as answer:  # noqa: S310 (a fixed http URL)
        sys.exit(0 if answer.status == 200 else 1)
except OSError as err:  # refused, timed out, or 503 (HTTPError): not ready
    print(f"{url}: {err}", file=sys.stderr)
    sys.exit(1)
