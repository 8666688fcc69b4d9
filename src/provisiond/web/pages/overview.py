"""The overview of an admin's subtree: the onboarding funnel over a chosen period, by group
and by model, the time to claim, the claims that failed or expired, the latest events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from markupsafe import Markup

from provisiond.domain.funnel import PRESETS, bucket_label
from provisiond.errors import InvalidInput
from provisiond.services.claims import overview
from provisiond.web.charts import Series, bar_chart, line_chart
from provisiond.web.pages.rendering import AdminDep, PageRoute, field_errors

router = APIRouter(include_in_schema=False, route_class=PageRoute)

STAGES = (("registered", "Registered"), ("provisioned", "Provisioned"), ("claimed", "Claimed"))


@router.get("/overview")
async def overview_page(
    page: AdminDep,
    days: str = "",
    first: Annotated[str, Query(alias="from")] = "",
    last: Annotated[str, Query(alias="to")] = "",
) -> Response:
    c = page.container
    spec = overview.PeriodSpec(days, first, last)
    try:
        view = await overview.overview(c.uow(), user=page.user, spec=spec, now=c.now())
    except InvalidInput as err:
        form = {"days": days or "custom", "from": first, "to": last}
        return page.render(
            "overview.html", 400, view=None, form=form, errors=field_errors(err), presets=PRESETS
        )
    p = view.period
    form = {
        "days": str(p.preset) if p.preset else "custom",
        "from": p.first.isoformat(),
        "to": p.last.isoformat(),
    }
    return page.render(
        "overview.html",
        view=view,
        form=form,
        errors={},
        presets=PRESETS,
        charts=_charts(view),
        bucket_label=bucket_label,
    )


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def _charts(view: overview.Overview) -> dict[str, Markup]:
    t = view.totals
    when = f"devices registered {view.period.first} to {view.period.last}"
    funnel = bar_chart(
        "funnel-chart",
        "Onboarding funnel",
        f"Of {t.registered:,} {when}: {t.provisioned:,} provisioned "
        f"({_percent(t.provisioned, t.registered)}), {t.claimed:,} claimed "
        f"({_percent(t.claimed, t.registered)}).",
        ["Registered", "Provisioned", "Claimed"],
        [Series("registered", "devices", [t.registered, t.provisioned, t.claimed])],
        # rates: shares of the registered
        notes=["", _percent(t.provisioned, t.registered), _percent(t.claimed, t.registered)],
        colour_keys=[name for name, _ in STAGES],
    )
    stages: list[Series] = [
        Series(name, label.lower(), [getattr(d, name) for d in view.by_day])
        for name, label in STAGES
    ]
    by_day = line_chart(
        "days-chart",
        "Devices by day of registration",
        "For each day of the period, the devices registered that day, and of them those "
        "provisioned and claimed so far; the table below has every value.",
        view.days,
        stages,
    )
    out = {"funnel": funnel, "by_day": by_day}
    for key, rows, title in (
        ("by_group", view.by_group, "Funnel by group"),
        ("by_model", view.by_model, "Funnel by model"),
    ):
        if rows:
            out[key] = bar_chart(
                f"{key.replace('_', '-')}-chart",
                title,
                f"Registered, provisioned and claimed {when}, by "
                f"{key[3:]}; the table below has the same numbers.",
                [r.label for r in rows],
                _stage_series(r.counts for r in rows),
            )
    if view.by_reason:
        out["endings"] = bar_chart(
            "endings-chart",
            "Claims that failed or expired, by reason",
            "Claims started in the period that ended without a claim, by reason; "
            "the table below has the same numbers.",
            [e.label for e in view.by_reason],
            [
                Series("failed", "failed", [e.failed for e in view.by_reason]),
                Series("expired", "expired", [e.expired for e in view.by_reason]),
            ],
        )
    return out


def _stage_series(counts: Any) -> list[Series]:
    rows = list(counts)
    return [Series(name, label.lower(), [getattr(c, name) for c in rows]) for name, label in STAGES]
