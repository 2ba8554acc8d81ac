"""The plain-text table writer: kubectl's layout, written page by page as the pages come."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from navigator.cli.output import JsonPathTemplate, OutputError, TableWriter, print_table
from navigator.cli.query import _page_cells, resolve_kind, table_columns
from navigator.client.columns import Column, Kind, Kinds, generic
from navigator.errors import NavigatorError


def test_layout_upper_case_headers_two_spaces_no_trailing_spaces() -> None:
    out = io.StringIO()
    writer = TableWriter(["cluster", "name", "ip"], out=out)
    writer.write([("east", "web-1", ""), ("west", "a-much-longer-name", "10.0.0.1")])
    assert out.getvalue() == (
        "CLUSTER  NAME                IP\n"
        "east     web-1\n"
        "west     a-much-longer-name  10.0.0.1\n"
    )
    assert all(line == line.rstrip() for line in out.getvalue().splitlines())


def test_widths_come_from_the_first_page_and_a_wider_value_is_never_cut() -> None:
    out = io.StringIO()
    writer = TableWriter(["name", "phase"], out=out)
    writer.write([("web-1", "Running")])
    writer.write([("a-name-longer-than-the-first-page", "Pending")])
    lines = out.getvalue().splitlines()
    assert lines == ["NAME   PHASE", "web-1  Running", "a-name-longer-than-the-first-page  Pending"]
    assert writer.rows == 2


def test_each_page_is_written_before_the_next_one_is_asked_for() -> None:
    out = io.StringIO()
    writer = TableWriter(["n"], out=out)

    def pages() -> Iterator[list[tuple[str]]]:
        yield [("1",), ("2",)]
        assert out.getvalue() == "N\n1\n2\n", "the first page was not written before the second was asked for"
        yield [("3",)]

    for page in pages():
        writer.write(page)
    assert out.getvalue().splitlines() == ["N", "1", "2", "3"]


def test_title_no_headers_and_nothing_for_no_rows() -> None:
    out = io.StringIO()
    writer = TableWriter(["name", "x"], headers_shown=False, title="as of 2026-12-03T08:00:00Z", out=out)
    writer.write([])
    assert out.getvalue() == "" and writer.rows == 0
    writer.write([("a", "1"), ("bb", "2")])
    assert out.getvalue() == "as of 2026-12-03T08:00:00Z\na   1\nbb  2\n"


def test_print_table_shows_none_as_empty(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["type", "rv", "fields"], [("REMOVED", "1", None), ("CHANGED", "1→2", "labels")])
    assert capsys.readouterr().out == "TYPE     RV   FIELDS\nREMOVED  1\nCHANGED  1→2  labels\n"


class Args:
    """What ``table_columns`` reads of the command line."""

    def __init__(self, cluster: str | None = None, namespace: str | None = None, kind: str | None = None,
                 show_labels: bool = False) -> None:  # fmt: skip
        self.cluster, self.namespace, self.kind, self.show_labels = cluster, namespace, kind, show_labels


PODS = Kind(
    "pods",
    (
        Column("phase", ".phase"),
        Column("ready", ".ready", type="boolean"),
        Column("age", ".start_time", type="date"),
        Column("restarts", ".restarts", wide=True, type="integer"),
        Column("ip", ".pod_ip", wide=True),
        Column("node", ".node_name", wide=True),
    ),
    ("po",),
)


def render(columns: list[Column], rows: list[dict[str, object]]) -> list[str]:
    out = io.StringIO()
    writer = TableWriter([c.name for c in columns], out=out)
    writer.write(_page_cells(columns, datetime(2026, 12, 3, tzinfo=UTC))(rows))
    return out.getvalue().splitlines()


def test_a_typical_pod_fits_80_columns_and_wide_adds_the_rest() -> None:
    row: dict[str, object] = {
        "cluster": "production-east", "namespace": "payments", "name": "crawler-agent-fcn57k98fc-9vtc8",
        "phase": "Running", "ready": True, "start_time": "2026-11-30T22:00:00Z", "restarts": 0,
        "pod_ip": "10.128.0.13", "node_name": "sim-pool-1-kcrf5fcv-qbfk", "labels": {"app": "crawler-agent"},
    }  # fmt: skip
    narrow = render(table_columns(Args(), "pods", PODS, wide=False), [row])  # type: ignore[arg-type]
    assert narrow[0].split() == ["CLUSTER", "NAMESPACE", "NAME", "PHASE", "READY", "AGE"]
    assert narrow[1].split() == ["production-east", "payments", "crawler-agent-fcn57k98fc-9vtc8", "Running", "true",
                                 "2d2h"]  # fmt: skip
    assert max(map(len, narrow)) <= 80
    wide = render(table_columns(Args(show_labels=True), "pods", PODS, wide=True), [row])  # type: ignore[arg-type]
    assert wide[0].split() == ["CLUSTER", "NAMESPACE", "NAME", "PHASE", "READY", "AGE", "RESTARTS", "IP", "NODE", "LABELS"]
    assert wide[1].split()[-4:] == ["0", "10.128.0.13", "sim-pool-1-kcrf5fcv-qbfk", "app=crawler-agent"]


def test_a_kind_nobody_described_gets_the_generic_columns() -> None:
    columns = table_columns(Args(cluster="east"), "gadgets", generic("gadgets"), wide=True)  # type: ignore[arg-type]
    row: dict[str, object] = {"cluster": "east", "namespace": "", "name": "g1", "resource_version": "7"}
    assert render(columns, [row]) == ["NAMESPACE  NAME  VERSION", "<none>     g1    7"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].name}", "a b"),
        ('{range .items[*]}{.name}={.n}{"\\n"}{end}', "a=1\nb=2\n"),
        ("{range .items}{.name},{end}", "a,b,"),
        ('{.items[?(@.n > 1)].name}', "b"),
        ("{.items[0]}", '{"name":"a","n":1}'),
        ("x{.items[0].missing}y", "xy"),
    ],
)
def test_jsonpath_templates(template: str, expected: str) -> None:
    assert JsonPathTemplate(template).render({"kind": "List", "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}]}) == expected


def test_bad_jsonpath_templates_say_what_is_wrong() -> None:
    for template, message in (("{.a", "unclosed {"), ("a}", "unmatched }"), ("{end}", "{end} without"),
                              ("{range .a}", "without {end}"), ("{.a[?(@.x==]}", "cannot parse")):  # fmt: skip
        with pytest.raises(OutputError, match=message.replace("{", r"\{").replace("}", r"\}")):
            JsonPathTemplate(template)


def test_a_word_is_resolved_by_the_kinds_the_manager_describes() -> None:
    kinds = Kinds.of([{"kind": "pods", "short_names": ["po"], "columns": [{"name": "ip", "path": ".pod_ip"}]}])
    assert resolve_kind("po", kinds).kind == "pods" and resolve_kind("pod", kinds).columns[0].name == "ip"
    with pytest.raises(NavigatorError, match=r"unknown kind 'pdos': the manager's collectors are pods \(po\)"):
        resolve_kind("pdos", kinds)
    # A manager that describes no kinds (older than the descriptions): the word is the kind, shown generically.
    older = resolve_kind("crontabs", Kinds())
    assert (older.kind, [c.name for c in older.columns]) == ("crontabs", ["version"])
