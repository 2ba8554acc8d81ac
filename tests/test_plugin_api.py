"""``navigator.plugin`` is the one module plugins import from: complete, importable, documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import navigator.plugin

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugin-api.md"


def test_every_public_name_is_importable() -> None:
    for name in navigator.plugin.__all__:
        assert hasattr(navigator.plugin, name), name


def test_every_public_name_is_documented() -> None:
    documented = set(re.findall(r"`(\w+)`", DOC.read_text()))
    missing = sorted(set(navigator.plugin.__all__) - documented)
    assert not missing, f"docs/plugin-api.md does not mention {missing}"


def test_the_version_is_semantic_and_in_the_history() -> None:
    version = navigator.plugin.PLUGIN_API_VERSION
    assert re.fullmatch(r"\d+\.\d+", version)
    assert f"| {version} |" in DOC.read_text()


def test_options_errors_name_the_yaml_key() -> None:
    class Options(navigator.plugin.PluginOptions):
        timeout: navigator.plugin.Duration = 5.0

    assert navigator.plugin.validate_options(Options, {"timeout": "1m"}, "sinks[].options").timeout == 60.0
    with pytest.raises(ValueError) as caught:
        navigator.plugin.validate_options(Options, {"timeout": "soon", "colour": 1}, "sinks[].options")
    message = str(caught.value)
    assert "sinks[].options.timeout: invalid duration 'soon'" in message
    assert "sinks[].options.colour: unknown key" in message
