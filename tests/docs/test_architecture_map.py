"""docs/architecture.md maps every spec behaviour to its modules; the map must name real files."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"


def _map_section() -> str:
    text = PAGE.read_text()
    start = text.index("## Where each spec behaviour lives")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_every_module_the_map_names_exists() -> None:
    section = _map_section()
    paths = re.findall(r"`([\w./-]+\.py)`", section)
    assert len(paths) >= 20, "the map lost its rows"
    missing = [p for p in paths if not (ROOT / p).is_file()]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_row_names_a_home() -> None:
    rows = [line for line in _map_section().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows
    for row in rows:
        assert ".py`" in row, f"a behaviour without a home: {row}"
