"""Plugin options: each plugin validates its own ``options`` mapping and errors name the YAML key.

Storage, sinks and transports all get an ``options`` mapping from the YAML; a plugin
declares a pydantic model for it (``PluginOptions``) and calls ``validate_options``,
so a typo is reported as ``storage.options.pth: unknown key`` like the core's own keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class PluginOptions(BaseModel):
    """Base for a plugin's options model: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


OptionsT = TypeVar("OptionsT", bound=BaseModel)


def problems(error: ValidationError, where: str) -> list[str]:
    """One ``<where>.<key>: <reason>`` line per problem, without pydantic's noise."""
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        message = message.removeprefix("Value error, ")
        key = ".".join(part for part in (where, path) if part) or "(top level)"
        lines.append(f"{key}: {message}")
    return lines


def validate_options(model: type[OptionsT], options: Mapping[str, Any] | None, where: str) -> OptionsT:
    """``options`` as ``model``; ``ValueError`` listing every bad key under ``where`` otherwise."""
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as exc:
        raise ValueError("; ".join(problems(exc, where))) from None
