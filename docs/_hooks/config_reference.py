"""MkDocs hook: generate the configuration reference from the pydantic models.

A hand-written table drifts the day someone adds a key; walking
``EdgeConfig``/``ManagerConfig`` at build time cannot. ``docs/configuration.md``
holds markers that this hook replaces:

- ``<!-- config-reference: edge -->`` and ``<!-- config-reference: manager -->``:
  every key with its dotted path, type, default and description;
- ``<!-- config-reference: environment -->``: the ``NAVIGATOR_...`` overrides.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
import types
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from navigator.config import EdgeConfig, ManagerConfig, loading
from navigator.config.types import parse_duration, parse_size

MARKER = re.compile(r"<!--\s*config-reference:\s*([\w-]+)\s*-->")

#: The file each model is read from, and the prefix of its environment overrides
#: (see ``navigator/config/loading.py``; ``tests/docs`` checks these against the loaders).
MODELS: dict[str, tuple[type[BaseModel], str, str]] = {
    "edge": (EdgeConfig, "edge.yaml", "NAVIGATOR_EDGE__"),
    "manager": (ManagerConfig, "manager.yaml", "NAVIGATOR_MANAGER__"),
}

#: Keys worth setting from the environment (secrets), shown as examples.
ENV_EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "edge": [("manager.token", "s3cret")],
    "manager": [("storage.options.dsn", "postgresql://navigator@db/navigator")],
}
#: Cluster ids may contain characters an environment variable name cannot, hence this one.
AUTH_TOKENS_VARIABLE = "NAVIGATOR_AUTH_TOKENS"


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    type: str
    default: str
    description: str
    section: bool = False


# --- formatting values -------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """Seconds as the shortest string ``parse_duration`` reads back (``30s``, ``5m``, ``1h``)."""
    if seconds == 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds < 1 and (seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """Bytes as the shortest binary-unit string ``parse_size`` reads back (``64Mi``)."""
    for unit, factor in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _flow(value: Any) -> str:
    """A value the way one writes it in YAML flow style."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value and re.fullmatch(r"[\w./:@~-]+", value) else f'"{value}"'
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) >= 1e6 else f"{value:g}"
    return str(value)


def _value_kind(field: FieldInfo) -> str | None:
    for meta in field.metadata:
        func = getattr(meta, "func", None)
        if func is parse_duration:
            return "duration"
        if func is parse_size:
            return "size"
    return None


def _format_default(field: FieldInfo, value: Any) -> str:
    kind = _value_kind(field)
    if kind == "duration" and isinstance(value, int | float):
        return f"`{format_duration(float(value))}`"
    if kind == "size" and isinstance(value, int):
        return f"`{format_size(value)}`"
    return f"`{_flow(value)}`"


# --- describing types --------------------------------------------------------------------------

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path", Any: "any"}


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) < len(get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


def _section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        return _section_model(item)
    return None


def describe_type(annotation: Any, field: FieldInfo | None = None) -> str:
    kind = _value_kind(field) if field is not None else None
    if kind == "duration":
        return "duration"
    if kind == "size":
        return "size"
    annotation, optional = _strip_optional(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        text = "one of " + ", ".join(f"`{a}`" for a in get_args(annotation))
    elif origin is list:
        (item,) = get_args(annotation)
        text = "list of sections" if _section_model(item) else f"list of {describe_type(item)}s"
    elif origin is dict:
        key, value = get_args(annotation)
        text = "map" if value is Any else f"map of {describe_type(key)} to {describe_type(value)}"
    elif _section_model(annotation):
        text = "section"
    else:
        text = _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return f"{text} or `null`" if optional else text


#: Constraint class -> (sign shown, attribute holding the bound).
_BOUNDS: dict[type, tuple[str, str]] = {
    annotated_types.Gt: (">", "gt"),
    annotated_types.Ge: ("≥", "ge"),
    annotated_types.Lt: ("<", "lt"),
    annotated_types.Le: ("≤", "le"),
}


def _constraints(field: FieldInfo) -> str:
    kind = _value_kind(field)
    parts = []
    for meta in field.metadata:
        for cls, (sign, attr) in _BOUNDS.items():
            if isinstance(meta, cls):
                bound = getattr(meta, attr)
                if kind == "duration":
                    bound = format_duration(float(bound))
                elif kind == "size":
                    bound = format_size(int(bound))
                parts.append(f"{sign} {bound}")
        if isinstance(meta, annotated_types.MinLen) and meta.min_length:
            parts.append(f"at least {meta.min_length} item{'s' if meta.min_length > 1 else ''}")
    return ", ".join(parts)


# --- descriptions ------------------------------------------------------------------------------


def _markdown(text: str) -> str:
    """reST inline literals to Markdown, one line, safe inside a table cell."""
    text = re.sub(r"``(.+?)``", r"`\1`", " ".join(text.split()))
    return text.replace("|", "\\|")


@cache
def _comments(model: type[BaseModel]) -> dict[str, str]:
    """``#:`` comments above fields, for the model and its bases (the Sphinx convention)."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (inspect.isclass(cls) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        (node,) = ast.parse(source).body
        assert isinstance(node, ast.ClassDef)
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                comment: list[str] = []
                index = stmt.lineno - 2
                while index >= 0 and lines[index].strip().startswith("#:"):
                    comment.insert(0, lines[index].strip()[2:].strip())
                    index -= 1
                if comment:
                    found[stmt.target.id] = " ".join(comment)
    return found


def _own_doc(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__dict__.get("__doc__") or "")


def _description(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    parts = [p for p in (field.description, _comments(model).get(name)) if p]
    return "; ".join(parts)


# --- walking the models ------------------------------------------------------------------------


def _default(field: FieldInfo) -> tuple[bool, Any]:
    """(has a fixed default, the default); a factory that differs per call is no fixed default."""
    if field.default is not PydanticUndefined:
        return True, field.default
    if field.default_factory is not None:
        first = field.get_default(call_default_factory=True)
        second = field.get_default(call_default_factory=True)
        if isinstance(first, BaseModel) or first == second:
            return True, first
        return False, None
    return False, None


def walk(model: type[BaseModel], instance: BaseModel | None = None, prefix: str = "") -> list[Row]:
    """One row per key, depth first; ``instance`` supplies defaults a parent overrides."""
    rows: list[Row] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation, optional = _strip_optional(field.annotation)
        description = _description(model, name, field)
        has_default, default = _default(field)
        if instance is not None:
            has_default, default = True, getattr(instance, name)
        if sub := _section_model(annotation):
            note = description or _markdown(_own_doc(sub))
            if optional and default is None:
                rows.append(Row(key, "section, optional", "`null`", _markdown(note), section=True))
                rows.extend(walk(sub, None, f"{key}."))
            else:
                shown = "**required**" if field.is_required() else ""
                rows.append(Row(key, "section", shown, _markdown(note), section=True))
                rows.extend(walk(sub, default if isinstance(default, BaseModel) else None, f"{key}."))
            continue
        if item := _list_item_model(annotation):
            shown = _format_default(field, default) if has_default else "**required**"
            note = description or _own_doc(item)
            rows.append(Row(key, "list of sections", shown, _markdown(note), section=True))
            rows.extend(walk(item, None, f"{key}[]."))
            continue
        if has_default:
            shown = _format_default(field, default)
        elif field.is_required():
            shown = "**required**"
        else:
            shown = "generated per process"
        kind = describe_type(field.annotation, field)
        if limits := _constraints(field):
            kind = f"{kind} ({limits})"
        rows.append(Row(key, kind, shown, _markdown(description)))
    return rows


# --- rendering ---------------------------------------------------------------------------------


def _table(rows: list[Row]) -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for row in rows:
        key = f"**`{row.key}`**" if row.section else f"`{row.key}`"
        lines.append(f"| {key} | {row.type} | {row.default} | {row.description} |")
    return "\n".join(lines)


def render_model(which: str) -> str:
    model, filename, _prefix = MODELS[which]
    rows = walk(model)
    top = [r for r in rows if "." not in r.key and not r.section]
    out = [f"Every key of `{filename}`; sections are in bold. Durations accept `30s`, `5m`, `1h`, "
           "`250ms` or a number of seconds; sizes accept `64Mi`, `4MB` or a number of bytes.", ""]  # fmt: skip
    if top:
        out += [_table(top), ""]
    for row in rows:
        if "." in row.key or not row.section:
            continue
        members = [r for r in rows if r.key.startswith((f"{row.key}.", f"{row.key}[]."))]
        out += [f"### `{row.key}` ({filename})", ""]
        if row.description:
            out += [row.description, ""]
        if row.type != "section":
            out += [f"Type: {row.type}; default {row.default}.", ""]
        elif row.default:
            out += ["This section is **required**.", ""]
        out += [_table(members), ""]
    return "\n".join(out)


def env_name(prefix: str, key: str) -> str:
    return prefix + "__".join(part.upper() for part in key.split("."))


def render_environment() -> str:
    # The module docstring's body (its summary line is about the module, not the variables).
    doc = _markdown_block((inspect.getdoc(loading) or "").partition("\n\n")[2])
    rows = ["| variable | sets |", "|---|---|"]
    for which, (_model, filename, prefix) in MODELS.items():
        rows.append(f"| `{prefix}<KEY>__<KEY>...` | any scalar key of `{filename}` |")
        for key, _example in ENV_EXAMPLES[which]:
            rows.append(f"| `{env_name(prefix, key)}` | `{key}` in `{filename}` |")
    rows.append(
        f"| `{AUTH_TOKENS_VARIABLE}` | `auth.tokens` in `manager.yaml`, as `cluster=token,other=token2` |"
    )
    example = [f"{env_name(MODELS[w][2], k)}={v}" for w in ENV_EXAMPLES for k, v in ENV_EXAMPLES[w]]
    example.append(f"{AUTH_TOKENS_VARIABLE}=production-east=change-me,staging=other-token")
    return "\n".join(
        [
            doc,
            "",
            "A variable overrides the file. Its text is validated like the same key written in the file "
            "(numbers, `true`/`false`, durations, sizes); each variable sets one value, so lists come "
            "from the file.",
            "",
            *rows,
            "",
            "```sh",
            *(f"export {line}" for line in example),
            "```",
        ]
    )


def _markdown_block(text: str) -> str:
    return re.sub(r"``(.+?)``", r"`\1`", text)


def render(which: str) -> str:
    if which == "environment":
        return render_environment()
    if which in MODELS:
        return render_model(which)
    raise KeyError(which)


def replace_markers(markdown: str, source: str = "page") -> str:
    def substitute(match: re.Match[str]) -> str:
        try:
            return render(match.group(1))
        except KeyError:
            known = ", ".join([*MODELS, "environment"])
            raise ValueError(
                f"{source}: unknown config-reference marker {match.group(1)!r} (known: {known})"
            ) from None

    return MARKER.sub(substitute, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: expand the markers of the page being built."""
    from mkdocs.exceptions import PluginError

    try:
        return replace_markers(markdown, page.file.src_uri)
    except ValueError as exc:
        raise PluginError(str(exc)) from None


__all__ = ["Row", "format_duration", "format_size", "on_page_markdown", "render", "replace_markers", "walk"]
