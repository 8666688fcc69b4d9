"""The console's profiles: the admin's list, creating one (its secret shown once), a
profile's page (its settings; its identity rules, registration-token key and state changed),
and rotating its secret (asked, then shown once).

Every change is one call of services/profiles.py, as the CLI and the API make it; the
service checks the role and the subtree again. A profile outside the admin's subtree is
"not found", in the same words as one that does not exist. A refused form comes back with
each message on its field, and nothing changed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from provisiond.domain.profiles import Profile
from provisiond.errors import (
    CaNotFound,
    Forbidden,
    GroupNotFound,
    InvalidInput,
    ModelNotFound,
    ProfileExists,
    ProfileNotFound,
    ProfileSecretChanged,
)
from provisiond.services import certificates, directory
from provisiond.services import profiles as service
from provisiond.services.claims.ownership import actor
from provisiond.services.group_choices import list_group_choices
from provisiond.services.profiles import ProfileWithSecret
from provisiond.web.pages import profile_forms as forms
from provisiond.web.pages.rendering import AdminDep, Page, PageRoute, error_titles, redirect

router = APIRouter(include_in_schema=False, route_class=PageRoute)

_TITLES = error_titles({ProfileNotFound: "Not found"})
_REFUSED = (InvalidInput, ProfileExists, GroupNotFound, ModelNotFound, CaNotFound, Forbidden)


def _path(profile: Profile | str) -> str:
    return f"/profiles/{quote(profile if isinstance(profile, str) else profile.name)}"


async def _choices(page: Page, *, groups: bool = False) -> forms.Choices:
    """What the forms offer; the admin's groups only for the create form (a profile's group
    is fixed once created)."""
    c, scope = page.container, page.user.scope
    in_scope = await list_group_choices(c.uow(), scope=scope) if groups else []
    cas = await certificates.list_cas(c.uow())
    policy = c.claim_policy
    return forms.Choices(
        groups=[g.path for g in in_scope],
        models=[
            (m.name, f"{m.name} — {m.description}" if m.description else m.name)
            for m in await directory.list_models(c.uow())
        ],
        signing_cas=[ca.name for ca in cas if ca.can_sign],
        cas=[ca.name for ca in cas],
        default_proof=policy.default_proof.value,
        default_window=policy.default_window_seconds,
    )


@router.get("/profiles")
async def profiles_page(page: AdminDep, cursor: str | None = None) -> Response:
    c = page.container
    try:
        found = await service.list_profiles(c.uow(), scope=page.user.scope, cursor=cursor)
    except InvalidInput as err:
        return page.render(
            "profiles_list.html", 422, profiles=[], next_cursor=None, error=err.detail
        )
    return page.render(
        "profiles_list.html",
        profiles=found.items,
        next_cursor=found.next_cursor,
        default_proof=c.claim_policy.default_proof.value,
    )


async def _create_form(
    page: Page, status: int = 200, values: dict[str, Any] | None = None, errors: Any = None
) -> Response:
    choices = await _choices(page, groups=True)
    shown = {**forms.CREATE_DEFAULTS, **(values or {})}
    if not shown.get("group") and choices.groups:
        shown["group"] = choices.groups[0]
    return page.render(
        "profiles_new.html", status, values=shown, errors=errors or {}, **choices.options()
    )


@router.get("/profiles/new")
async def profile_new_form(page: AdminDep) -> Response:
    return await _create_form(page)


@router.post("/profiles/new")
async def profile_create(page: AdminDep) -> Response:
    form = await page.form()
    c = page.container
    spec, unread = await forms.spec_of(form)
    try:
        made = await service.create_profile(
            c.uow(),
            scope=page.user.scope,
            spec=spec,
            sealer=c.sealer,
            actor=actor(page.user),
            now=c.now(),
        )
    except _REFUSED as err:
        errors = {**forms.errors_of(err), **unread}
        if form.get("secret"):  # never sent back: typed again, or left out to generate one
            errors.setdefault(
                "secret", "Type the secret again (it is not sent back), or leave it empty."
            )
        values = forms.posted_values(form, forms.CREATE_FIELDS)
        return await _create_form(page, err.status, values, errors)
    return _secret_page(page, made, created=True)


def _secret_page(page: Page, made: ProfileWithSecret, *, created: bool) -> Response:
    """The one page that shows a profile's secret (a POST's answer, never stored)."""
    return page.render(
        "profiles_secret.html",
        profile=made.profile,
        secret=made.secret,
        created=created,
        profile_path=_path(made.profile),
    )


async def _profile_page(
    page: Page,
    name: str,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    c = page.container
    profile = await service.get_profile(c.uow(), scope=page.user.scope, name=name)
    choices = await _choices(page)
    return page.render(
        "profiles_edit.html",
        status,
        profile=profile,
        profile_path=_path(profile),
        values=values or forms.values_of(profile),
        errors=errors or {},
        **choices.options(),
        **context,
    )


@router.get("/profiles/{name}")
@_TITLES
async def profile_page(page: AdminDep, name: str, saved: str = "") -> Response:
    return await _profile_page(page, name, saved=saved in ("rules", "key", "enabled", "disabled"))


@router.post("/profiles/{name}/edit")
@_TITLES
async def profile_edit(page: AdminDep, name: str) -> Response:
    form = await page.form()
    c = page.container
    profile = await service.get_profile(c.uow(), scope=page.user.scope, name=name)
    changes, unread = forms.changes_of(form, profile)
    try:
        await service.update_profile(
            c.uow(),
            scope=page.user.scope,
            name=profile.name,
            changes=changes,
            actor=actor(page.user),
            now=c.now(),
        )
    except (InvalidInput, CaNotFound) as err:
        values = forms.posted_values(form, forms.EDIT_FIELDS)
        errors = {**forms.errors_of(err), **unread}
        return await _profile_page(page, name, err.status, values, errors)
    return redirect(f"{_path(profile)}?saved=rules")


@router.post("/profiles/{name}/jwt-key")
@_TITLES
async def profile_jwt_key(page: AdminDep, name: str) -> Response:
    form = await page.form()
    c = page.container
    try:
        profile = await service.set_profile_jwt_key(
            c.uow(),
            scope=page.user.scope,
            name=name,
            public_key=await forms.jwt_key_of(form),
            actor=actor(page.user),
            now=c.now(),
        )
    except InvalidInput as err:
        pasted = forms.posted_values(form, ("jwt_public_key",)).get("jwt_public_key", "")
        errors = forms.errors_of(err)
        return await _profile_page(page, name, err.status, errors=errors, jwt_value=pasted)
    return redirect(f"{_path(profile)}?saved=key")


@router.post("/profiles/{name}/enabled")
@_TITLES
async def profile_enabled(page: AdminDep, name: str) -> Response:
    form = await page.form()
    c = page.container
    enabled = form.get("enabled") == "yes"
    profile = await service.set_profile_enabled(
        c.uow(),
        scope=page.user.scope,
        name=name,
        enabled=enabled,
        actor=actor(page.user),
        now=c.now(),
    )
    return redirect(f"{_path(profile)}?saved={'enabled' if enabled else 'disabled'}")


async def _rotate_form(
    page: Page, name: str, status: int = 200, errors: dict[str, str] | None = None
) -> Response:
    c = page.container
    profile = await service.get_profile(c.uow(), scope=page.user.scope, name=name)
    return page.render(
        "profiles_rotate.html",
        status,
        profile=profile,
        profile_path=_path(profile),
        errors=errors or {},
    )


@router.get("/profiles/{name}/rotate")
@_TITLES
async def profile_rotate_form(page: AdminDep, name: str) -> Response:
    return await _rotate_form(page, name)


@router.post("/profiles/{name}/rotate")
@_TITLES
async def profile_rotate(page: AdminDep, name: str) -> Response:
    form = await page.form()
    if form.get("confirm") != "yes":  # not confirmed (a stray post): ask, change nothing
        return await _rotate_form(page, name)
    c = page.container
    try:
        made = await service.rotate_profile_secret(
            c.uow(),
            scope=page.user.scope,
            name=name,
            secret=forms.posted_values(form, ("secret",)).get("secret") or None,
            sealer=c.sealer,
            replacing=forms.replacing_of(form),
            actor=actor(page.user),
            now=c.now(),
        )
    except InvalidInput as err:
        return await _rotate_form(page, name, err.status, forms.errors_of(err))
    except ProfileSecretChanged as err:
        # This confirmation is older than the secret (sent again by a reload, or another
        # admin rotated it meanwhile): the secret set since is kept.
        return await _rotate_form(page, name, err.status, {"": _ROTATED_MEANWHILE})
    return _secret_page(page, made, created=False)


_ROTATED_MEANWHILE = (
    "The secret was changed after this page was shown; nothing was changed. "
    "Rotate it again here only if you mean to."
)
