"""Read a YAML file, apply ``NAVIGATOR_...`` environment overrides, validate, explain failures.

Secrets belong in the environment, not in files:
``NAVIGATOR_EDGE__MANAGER__TOKEN=...`` sets ``manager.token`` of an edge file,
``NAVIGATOR_MANAGER__STORAGE__OPTIONS__DSN=...`` a manager's storage option
(``__`` separates levels; names are lowercased). ``NAVIGATOR_AUTH_TOKENS``
(``cluster=token,other=token2``) adds manager tokens, since cluster ids may hold
characters an environment variable name cannot.

A bad value that came from the environment is reported under the variable's
name (``NAVIGATOR_EDGE__SYNC__INTERVAL: ...``): the file never held it, so
naming the file would send the reader looking in the wrong place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from navigator.config.edge import EdgeConfig
from navigator.config.manager import ManagerConfig
from navigator.errors import ConfigError
from navigator.plugin_options import problems

M = TypeVar("M", bound=BaseModel)

#: Where overridden keys came from: the key's path -> the environment variable that set it.
Origins = Mapping[tuple[str, ...], str]


def format_validation_error(error: ValidationError, source: str, origins: Origins | None = None) -> str:
    """One line per problem: under ``source`` for the file's keys, under the variable's name for the
    environment's (a section-level problem also names the variables that set keys inside it)."""
    origins = origins or {}
    in_file: list[str] = []
    in_env: list[str] = []
    for item, line in zip(error.errors(), problems(error, ""), strict=True):
        loc = tuple(str(part) for part in item["loc"])
        key = ".".join(loc) or "(top level)"
        message = line.removeprefix(f"{key}: ")
        variable = next((origins[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origins), None)
        if variable is not None:
            in_env.append(f"{variable}: {message} (it overrides {key})")
            continue
        inside = sorted({name for path, name in origins.items() if loc and path[: len(loc)] == loc})
        if inside:
            line += f" (with {', '.join(inside)} from the environment)"
        in_file.append(line)
    lines = [f"{source}: invalid configuration", *(f"  {line}" for line in in_file)] if in_file else []
    return "\n".join(lines + in_env)


#: The environment prefix of each command that reads a config file.
PREFIXES = {"edge": "NAVIGATOR_EDGE__", "manager": "NAVIGATOR_MANAGER__"}

#: A dotted key followed by its problem, as ``problems`` and plugins' option errors write them.
_PROBLEM_KEY = re.compile(r"(?<![\w.])([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+): ")


def _overrides(prefix: str, environ: Mapping[str, str]) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """(key path, variable, value) of each ``<prefix>A__B=value`` in ``environ``."""
    for key, value in environ.items():
        if key.startswith(prefix):
            path = tuple(p.lower() for p in key[len(prefix) :].split("__") if p)
            if path:
                yield path, key, value


def name_overrides(message: str, prefix: str, environ: Mapping[str, str] | None = None) -> str:
    """``message`` with each ``a.b.c: ...`` that a variable set written ``VARIABLE (a.b.c): ...``.

    Plugins validate their own ``options`` after the file is loaded, so their errors name the
    key; since a variable overrides the file, a key a variable set got the variable's value.
    """
    origins = {path: name for path, name, _ in _overrides(prefix, os.environ if environ is None else environ)}
    if not origins:
        return message

    def named(match: re.Match[str]) -> str:
        key = match.group(1)
        parts = tuple(key.split("."))
        variable = next((origins[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in origins), None)
        return f"{variable} ({key}): " if variable is not None else match.group(0)

    return _PROBLEM_KEY.sub(named, message)


def _apply_env(data: dict[str, Any], prefix: str, environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Set each ``<prefix>A__B=value`` as key ``a.b``; returns which variable set which key."""
    origins: dict[tuple[str, ...], str] = {}
    for path, key, value in _overrides(prefix, environ):
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
        origins[path] = key
    return origins


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.expanduser().read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def validate(model: type[M], data: dict[str, Any], source: str, origins: Origins | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, origins)) from None


def load_edge_config(path: Path | None, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    environ = os.environ if environ is None else environ
    data = read_yaml(path) if path is not None else {}
    origins = _apply_env(data, PREFIXES["edge"], environ)
    return validate(EdgeConfig, data, str(path or "edge configuration"), origins)


def load_manager_config(path: Path | None, environ: Mapping[str, str] | None = None) -> ManagerConfig:
    environ = os.environ if environ is None else environ
    data = read_yaml(path) if path is not None else {}
    origins = _apply_env(data, PREFIXES["manager"], environ)
    if tokens := environ.get("NAVIGATOR_AUTH_TOKENS"):
        auth = data.setdefault("auth", {}) or {}
        data["auth"] = auth
        merged = dict(auth.get("tokens") or {})
        for pair in tokens.split(","):
            cluster, sep, token = pair.partition("=")
            if not sep:
                raise ConfigError("NAVIGATOR_AUTH_TOKENS: expected cluster=token[,cluster=token...]")
            merged[cluster.strip()] = token.strip()
            origins[("auth", "tokens", cluster.strip())] = "NAVIGATOR_AUTH_TOKENS"
        auth["tokens"] = merged
    config = validate(ManagerConfig, data, str(path or "manager configuration"), origins)
    if config.auth is not None and config.auth.tokens_file is not None:
        extra = read_yaml(config.auth.tokens_file)
        data["auth"] = {**(data.get("auth") or {}), "tokens": {**extra, **config.auth.tokens}}
        config = validate(ManagerConfig, data, str(path or "manager configuration"), origins)
    return config
