"""The catalogue of device models that claim forms choose from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from provisiond.domain.limits import MODEL_DESCRIPTION_MAX, MODEL_NAME_MAX
from provisiond.domain.text import has_control_chars
from provisiond.errors import InvalidInput, Problem


@dataclass(frozen=True, slots=True)
class DeviceModel:
    id: uuid.UUID
    name: str
    description: str
    created_at: datetime


def parse_model_name(text: str, *, field: str = "model") -> str:
    name = text.strip()
    problem = None
    if not name:
        problem = "is empty"
    elif len(name) > MODEL_NAME_MAX:
        problem = f"is longer than {MODEL_NAME_MAX} characters"
    elif has_control_chars(name):
        problem = "contains a control character"
    if problem:
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])
    return name


def parse_model_description(text: str, *, field: str = "description") -> str:
    desc = text.strip()
    if len(desc) > MODEL_DESCRIPTION_MAX:
        problem = f"is longer than {MODEL_DESCRIPTION_MAX} characters"
        raise InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])
    return desc
