from __future__ import annotations

import pytest

from navigator.selectors import SelectorError, parse_selector


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app=web,tier!=db", {"app": "web", "tier": "front"}, True),
        ("app=web,tier!=db", {"app": "web", "tier": "db"}, False),
        ("tier!=db", {}, True),
        ("env in (prod, staging)", {"env": "staging"}, True),
        ("env in (prod,staging)", {"env": "dev"}, False),
        ("env notin (prod)", {}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("legacy", {"legacy": ""}, True),
        ("!legacy", {"legacy": "x"}, False),
        ("!legacy,app=web", {"app": "web"}, True),
        ("app.kubernetes.io/name=nginx", {"app.kubernetes.io/name": "nginx"}, True),
    ],
)
def test_matches_like_kubernetes(selector: str, labels: dict[str, str], expected: bool) -> None:
    parsed = parse_selector(selector)
    assert parsed is not None
    assert parsed.matches(labels) is expected


def test_empty_selector_matches_everything() -> None:
    assert parse_selector("") is None
    assert parse_selector(None) is None


@pytest.mark.parametrize("bad", ["app=we b", "=web", "app in prod", "app=web,,x=y", "a=b)"])
def test_bad_selector_names_the_part(bad: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(bad)
    assert "selector" in str(info.value) or "label" in str(info.value)


def test_equalities_are_the_indexable_part() -> None:
    parsed = parse_selector("app=web,tier!=db,env in (a)")
    assert parsed is not None
    assert parsed.equalities() == {"app": "web"}
