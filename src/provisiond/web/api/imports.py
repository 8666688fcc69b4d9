"""POST /api/v1/devices/import: bulk registration from a streamed CSV or JSON-lines body."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from provisiond.errors import (
    Forbidden,
    GroupNotFound,
    ImportInvalid,
    ModelNotFound,
    PayloadTooLarge,
    ProfileNotFound,
)
from provisiond.protocols.csv_cells import restore
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.registration import (
    SECRET_COLUMNS,
    ImportOptions,
    SecretRow,
    credential_csv,
    register_devices,
)
from provisiond.web.api.schemas import ImportSummary
from provisiond.web.deps import ContainerDep, OperatorDep, actor
from provisiond.web.problems import responses

router = APIRouter(prefix="/api/v1", tags=["devices"])
SPOOL_IN_MEMORY = 8 * 1024 * 1024


class SpooledCredentials:
    """The import's secrets, in memory up to a few MB and on a private temp file beyond."""

    def __init__(self) -> None:
        self.file: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_IN_MEMORY, mode="w+", newline="", encoding="utf-8"
        )
        self.file.write(credential_csv([SECRET_COLUMNS]))

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        self.file.write(credential_csv(rows))

    def prepare(self) -> None:
        self.file.flush()

    def commit(self) -> None:
        return None  # the answer carries the secrets; nothing to keep on disk

    def chunks(self) -> Iterator[bytes]:
        self.file.seek(0)
        try:
            while block := self.file.read(1 << 16):
                yield block.encode()
        finally:
            self.file.close()

    def rows(self) -> list[dict[str, str]]:
        self.file.seek(0)
        try:
            return [{k: restore(v) for k, v in row.items()} for row in csv.DictReader(self.file)]
        finally:
            self.file.close()


async def spool_body(request: Request, limit: int) -> IO[bytes]:
    """The request body on a spooled temporary file, never whole in memory."""
    body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            body.close()
            raise PayloadTooLarge(
                f"the body is larger than {limit} bytes (setting api_max_body_bytes)", limit=limit
            )
        body.write(chunk)
    body.seek(0)
    return body


@router.post(
    "/devices/import",
    status_code=201,
    response_model=ImportSummary,
    responses=responses(
        ImportInvalid, GroupNotFound, ModelNotFound, ProfileNotFound, PayloadTooLarge, Forbidden
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_devices(
    request: Request,
    c: ContainerDep,
    op: OperatorDep,
    group: str | None = Query(None, description="claim rows without group/owner for this group"),
    model: str | None = Query(None, description="model of rows without a model"),
    profile: str | None = Query(None, description="profile of rows without a profile"),
    skip_existing: bool = Query(False, description="skip serials already registered"),
    format: str | None = Query(None, description="csv or jsonl (default: Content-Type)"),
) -> Response:
    """Register every device of the file, or none. The answer carries each device's secret,
    once: as CSV (serial, device_id, credential_type, secret), or as JSON when the request
    accepts application/json."""
    fmt = (
        ImportFormat.parse(format)
        if format
        else ImportFormat.guess(None, request.headers.get("content-type"))
    )
    body = await spool_body(request, c.settings.limits.api_max_body_bytes)
    sink = SpooledCredentials()
    options = ImportOptions(
        group=group,
        model=model,
        profile=profile,
        default_claim_proof=c.settings.claims.proof,
        claim_code_length=c.settings.claims.code_length,
        skip_existing=skip_existing,
        source=f"api:{actor(op)}",
        batch_size=c.settings.import_batch_size,
        max_problems=c.settings.import_max_problems,
        broker_sealer=c.broker_sealer,
    )
    try:
        result = await register_devices(
            c.uow(),
            scope=op.scope,
            items=read_import(body, fmt),
            options=options,
            sink=sink,
            actor=actor(op),
            now=c.now(),
        )
    except ImportInvalid:
        request.app.state.metrics.import_failures.inc()
        sink.file.close()
        raise
    except BaseException:
        sink.file.close()
        raise
    finally:
        body.close()
    request.app.state.metrics.imported.inc(result.imported)
    headers = {
        "X-Provisiond-Imported": str(result.imported),
        "X-Provisiond-Claimed": str(result.claimed),
        "X-Provisiond-Skipped": str(result.skipped),
        "X-Provisiond-Event-Id": str(result.event_id),
        "Cache-Control": "no-store",
    }
    if "application/json" in request.headers.get("accept", ""):
        summary = ImportSummary(
            imported=result.imported,
            claimed=result.claimed,
            skipped=result.skipped,
            event_id=result.event_id,
            credentials=sink.rows(),
        )
        return Response(
            summary.model_dump_json(),
            status_code=201,
            headers=headers,
            media_type="application/json",
        )
    return StreamingResponse(
        sink.chunks(), status_code=201, headers=headers, media_type="text/csv; charset=utf-8"
    )
