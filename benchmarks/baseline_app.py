"""The floor of provision_http.py: a bare Starlette endpoint that answers a constant.

python benchmarks/baseline_app.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"status":"SUCCESS","credentialsType":"ACCESS_TOKEN","credentialsValue":"x"}'


async def provision(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


app = Starlette(routes=[Route("/api/v1/provision", provision, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
