"""The console's import: register devices from a CSV or JSON lines file (the formats of
`provisiond devices import` and POST /api/v1/devices/import; docs/devices.md#import-files).

One form, two buttons. **Check** is a dry run (services.registration.check_import): every
problem listed by line and field, nothing written, not even an audit event. **Import** is the
import itself (register_devices: one transaction, one event); its answer IS the credentials
file, as an attachment, so the secrets are handed over once and kept nowhere: import.js
posts the form, shows the upload's progress, offers the answer for download and says what
was imported; without JavaScript the browser downloads the answer itself. A file with any
problem imports nothing, and the page lists the problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import FormData, UploadFile

from provisiond.domain.limits import PAGE_SIZE_MAX
from provisiond.errors import (
    GroupNotFound,
    ImportInvalid,
    InvalidInput,
    ModelNotFound,
    ProfileNotFound,
    ProvisiondError,
)
from provisiond.services.directory import list_models
from provisiond.services.group_choices import list_group_choices
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.profiles import list_profiles
from provisiond.services.registration import ImportOptions, check_import, register_devices
from provisiond.web.api.imports import SpooledCredentials
from provisiond.web.pages.rendering import SECURITY_HEADERS, AdminDep, Page, PageRoute, field_errors

router = APIRouter(include_in_schema=False, route_class=PageRoute)

#: The option each not-found error of the import's defaults belongs to.
_DEFAULT_FIELDS: dict[type[ProvisiondError], str] = {
    GroupNotFound: "group",
    ModelNotFound: "model",
    ProfileNotFound: "profile",
}
#: Room left for the form's other parts (CSRF token, options, multipart boundaries) in a post
#: of the largest body a page takes.
FORM_OVERHEAD = 4096


@dataclass(frozen=True, slots=True)
class ImportForm:
    """The options the form posts (the API's query parameters)."""

    group: str = ""
    model: str = ""
    profile: str = ""
    skip_existing: bool = False

    @classmethod
    def of(cls, form: FormData) -> ImportForm:
        def text(name: str) -> str:
            value = form.get(name, "")
            return value.strip() if isinstance(value, str) else ""

        return cls(text("group"), text("model"), text("profile"), form.get("skip_existing") == "on")


def largest_file(page: Page) -> int:
    """The largest file the form takes: the operator API's body limit (web/app.py gives the
    form that limit, not a public page's), less the form around it."""
    return page.container.settings.limits.http_max_body_bytes - FORM_OVERHEAD


async def _render(page: Page, status: int = 200, **context: Any) -> Response:
    c, scope = page.container, page.user.scope
    groups = await list_group_choices(c.uow(), scope=scope, limit=PAGE_SIZE_MAX)
    profiles = await list_profiles(c.uow(), scope=scope, limit=PAGE_SIZE_MAX)
    models = await list_models(c.uow())
    context.setdefault("values", ImportForm())
    return page.render(
        "import_form.html",
        status,
        group_options=[("", "None: each row names its group or owner")]
        + [(g.path, g.path) for g in groups],
        model_options=[("", "None")]
        + [(m.name, f"{m.name} — {m.description}" if m.description else m.name) for m in models],
        profile_options=[("", "None")] + [(p.name, p.name) for p in profiles.items],
        max_bytes=largest_file(page),
        setting="limits.http_max_body_bytes",
        **context,
    )


@router.get("/import")
async def import_page(page: AdminDep) -> Response:
    return await _render(page)


@router.post("/import")
async def import_post(page: AdminDep) -> Response:
    form = await page.form()
    values = ImportForm.of(form)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors = {"file": "Choose a CSV or JSON lines file."}
        return await _render(page, 422, values=values, errors=errors)
    dry_run = form.get("action") == "check"
    try:
        if dry_run:
            return await _check(page, values, upload)
        return await _import(page, values, upload)
    except ImportInvalid as err:
        page.request.app.state.metrics.import_failures.inc()
        return await _render(
            page,
            422,
            values=values,
            problems=err.problems,
            summary=err.detail,
            filename=upload.filename,
            dry_run=dry_run,
        )
    except (GroupNotFound, ModelNotFound, ProfileNotFound) as err:
        field = _DEFAULT_FIELDS[type(err)]
        message = err.problems[0].message if err.problems else err.detail
        return await _render(page, 422, values=values, errors={field: message})
    except InvalidInput as err:
        return await _render(page, 422, values=values, errors=field_errors(err))
    finally:
        await upload.close()


def _options(page: Page, values: ImportForm, source: str) -> ImportOptions:
    c = page.container
    return ImportOptions(
        group=values.group or None,
        model=values.model or None,
        profile=values.profile or None,
        default_claim_proof=c.settings.claims.proof,
        claim_code_length=c.settings.claims.code_length,
        skip_existing=values.skip_existing,
        source=source,
        batch_size=c.settings.import_batch_size,
        max_problems=c.settings.import_max_problems,
        broker_sealer=c.broker_sealer,
    )


async def _check(page: Page, values: ImportForm, upload: UploadFile) -> Response:
    c = page.container
    fmt = ImportFormat.guess(upload.filename, upload.content_type)
    checked = await check_import(
        c.uow(),
        scope=page.user.scope,
        items=read_import(upload.file, fmt),
        options=_options(page, values, f"console:{page.user.email}"),
        now=c.now(),
    )
    return await _render(page, values=values, checked=checked, filename=upload.filename)


async def _import(page: Page, values: ImportForm, upload: UploadFile) -> Response:
    c = page.container
    fmt = ImportFormat.guess(upload.filename, upload.content_type)
    actor = f"user:{page.user.email}"
    sink = SpooledCredentials()
    try:
        result = await register_devices(
            c.uow(),
            scope=page.user.scope,
            items=read_import(upload.file, fmt),
            options=_options(page, values, f"console:{upload.filename}"),
            sink=sink,
            actor=actor,
            now=c.now(),
        )
    except BaseException:
        sink.file.close()
        raise
    page.request.app.state.metrics.imported.inc(result.imported)
    stamp = c.now().strftime("%Y%m%d-%H%M%S")
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="credentials-{stamp}.csv"',
        "X-Provisiond-Imported": str(result.imported),
        "X-Provisiond-Claimed": str(result.claimed),
        "X-Provisiond-Skipped": str(result.skipped),
        "X-Provisiond-Event-Id": str(result.event_id),
    }
    return StreamingResponse(sink.chunks(), headers=headers, media_type="text/csv; charset=utf-8")
