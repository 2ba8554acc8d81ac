from __future__ import annotations

import pytest

from navigator.selectors import LabelSelector, Operator, Requirement, SelectorError, parse_selector


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


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("replicas>4", {"replicas": "5"}, True),
        ("replicas>5", {"replicas": "5"}, False),
        ("replicas<5", {"replicas": "-3"}, True),
        ("replicas > +4", {"replicas": "10"}, True),
        ("replicas>4", {}, False),  # a missing label is neither above nor below
        ("replicas>4", {"replicas": "many"}, False),  # nor is a label that is not an integer
        ("replicas>4", {"replicas": "1_0"}, False),  # Go's ParseInt, not Python's int()
        ("replicas<4,app=web", {"replicas": "3", "app": "web"}, True),
    ],
)
def test_greater_and_less_than_when_asked_for(selector: str, labels: dict[str, str], expected: bool) -> None:
    parsed = parse_selector(selector, numeric=True)
    assert parsed is not None
    assert parsed.matches(labels) is expected


def test_greater_and_less_than_are_refused_by_default() -> None:
    # Storage backends translate only the other operators: the query path must never pass these on.
    with pytest.raises(SelectorError, match=r"cannot use '>' in label selector 'n>4': only =, ==, !="):
        parse_selector("n>4")
    parsed = parse_selector("n<4", numeric=True)
    assert parsed is not None and parsed.requirements == (Requirement("n", Operator.LESS_THAN, ("4",)),)


@pytest.mark.parametrize("bad", ["n>x", "n<", "n>1.5", "n>1_0"])
def test_greater_and_less_than_need_an_integer(bad: str) -> None:
    with pytest.raises(SelectorError, match="for 'Gt', 'Lt' operators, the value must be an integer"):
        parse_selector(bad, numeric=True)


def test_an_empty_in_set_is_refused_an_empty_notin_set_is_not() -> None:
    with pytest.raises(SelectorError, match="for 'in', 'notin' operators, values set can't be empty: 'app in \\(\\)'"):
        parse_selector("app in ()")
    notin = parse_selector("app notin ()")
    assert notin is not None
    assert notin.matches({}) and notin.matches({"app": "web"}) and not notin.matches({"app": ""})


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("env in(prod)", {"env": "prod"}, True),  # no space needed before the parenthesis
        ("env notin(prod)", {"env": "prod"}, False),
        ("empty=", {"empty": ""}, True),  # the empty value is a value
        ("empty=", {}, False),
        ("env in (a,)", {"env": ""}, True),  # ... in a set too
        ("  app = web , tier in (front,back) ", {"app": "web", "tier": "back"}, True),
    ],
)
def test_kubernetes_grammar_details(selector: str, labels: dict[str, str], expected: bool) -> None:
    parsed = parse_selector(selector)
    assert parsed is not None
    assert parsed.matches(labels) is expected


def test_label_values_are_at_most_63_characters() -> None:
    assert parse_selector("a=" + "x" * 63) is not None
    with pytest.raises(SelectorError, match="invalid label value"):
        parse_selector("a=" + "x" * 64)


def test_a_selector_without_requirements_is_false_and_matches_everything() -> None:
    empty = LabelSelector(())
    assert not empty and empty.matches({"any": "thing"})
    parsed = parse_selector("app")
    assert parsed and str(parsed) == "app"
