"""Every hook is documented: its docstring is the reference plugin authors read."""

from __future__ import annotations

import inspect

import pytest

from navigator import hookspecs

HOOKS = [name for name, obj in vars(hookspecs).items() if name.startswith("navigator_") and callable(obj)]


def test_hooks_exist() -> None:
    assert {
        "navigator_collectors",
        "navigator_serializers",
        "navigator_transports",
        "navigator_storage_backends",
        "navigator_sinks",
    } <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_an_example(name: str) -> None:
    hook = getattr(hookspecs, name)
    doc = inspect.getdoc(hook) or ""
    assert len(doc.splitlines()[0]) > 10, f"{name} has no summary line"
    assert "Example" in doc and "@hookimpl" in doc, f"{name} lacks an example implementation"
    assert inspect.signature(hook).return_annotation not in (inspect.Signature.empty, "None"), (
        f"{name} has no return type"
    )


@pytest.mark.parametrize("name", HOOKS)
def test_hook_example_compiles(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    example = doc.split("::", 1)[1]
    code = inspect.cleandoc(example)
    compile(code, f"<example of {name}>", "exec")
