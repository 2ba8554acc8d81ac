"""``navigator completion bash|zsh``: a script from the full parser that the shell accepts and that completes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from navigator.cli.main import COMMANDS

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = subprocess.run([*NAVIGATOR, "completion", "bash"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("completion") / "navigator.bash"
    path.write_text(result.stdout)
    return path


def complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for the last of ``words`` after ``navigator``, as the shell would ask for it."""
    line = ["navigator", *words]
    quoted = " ".join(f"'{w}'" for w in line)
    program = (
        f"source '{script}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(line) - 1}\n"
        f"COMP_LINE='{' '.join(line)}'; COMP_POINT=${{#COMP_LINE}}\n"
        f"_shtab_navigator navigator '{line[-1]}' '{line[-2]}'\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return [word for word in result.stdout.splitlines() if word]


def test_the_bash_script_is_valid(bash_script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(bash_script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "complete -o bashdefault -F _shtab_navigator navigator" in bash_script.read_text()


def test_bash_offers_every_sub_command(bash_script: Path) -> None:
    assert set(complete(bash_script, "")) == set(COMMANDS)
    assert complete(bash_script, "ver") == ["version"]


def test_bash_completes_nested_commands_options_and_choices(bash_script: Path) -> None:
    assert complete(bash_script, "config", "schema", "") == ["edge", "manager"]
    assert complete(bash_script, "plugins", "") == ["list"]
    assert "--config" in complete(bash_script, "edge", "--c")
    assert complete(bash_script, "completion", "") == ["bash", "zsh"]


def test_bash_completes_file_names_for_path_options(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "edge-east.yaml").write_text("cluster: {id: east}\n")
    assert complete(bash_script, "edge", "--config", "edge-", cwd=tmp_path) == ["edge-east.yaml"]


def test_zsh_script() -> None:
    result = subprocess.run([*NAVIGATOR, "completion", "zsh"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#compdef navigator")
    assert all(f"\n    {name}:'" in result.stdout for name in COMMANDS)
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("the zsh script's syntax is checked with zsh -n, and zsh is not installed")
    checked = subprocess.run([zsh, "-n"], input=result.stdout, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = subprocess.run([*NAVIGATOR, "completion", "fish"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice: 'fish'" in result.stderr and "Traceback" not in result.stderr
