"""Several managers on one schema: what one of them applies reaches the watchers of every other one.

Two backends on the same schema stand for two managers (their own pools, their own
listening connection); a real ``Reconciler`` applies states through one of them, as
the manager does, and the other's ``deliver`` must get exactly the changes it made.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from loguru import logger
from navigator_plugin_postgres import follow
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.options import parse_options
from psycopg.conninfo import make_conninfo

from navigator.interfaces.follow import ChangeFollower
from navigator.plugin import Change, ChangeType, HistoryQuery, ResourceKey
from navigator.testing.storage_conformance import Feed, make, state, summary

WAIT = 10.0


class Inbox:
    """A ``deliver``: keeps every call, and lets a test wait for a number of changes."""

    def __init__(self) -> None:
        self.calls: list[list[Change]] = []
        self._cond = threading.Condition()

    def __call__(self, changes: Sequence[Change]) -> None:
        with self._cond:
            self.calls.append(list(changes))
            self._cond.notify_all()

    @property
    def changes(self) -> list[Change]:
        with self._cond:
            return [c for call in self.calls for c in call]

    def wait_for(self, count: int, timeout: float = WAIT) -> list[Change]:
        with self._cond:
            self._cond.wait_for(lambda: sum(map(len, self.calls)) >= count, timeout)
        got = self.changes
        assert len(got) >= count, f"{len(got)} changes delivered within {timeout}s, expected {count}"
        return got

    def stays(self, count: int, quiet: float = 0.5) -> None:
        """Nothing more arrives for ``quiet`` seconds (a negative can only be checked for a while)."""
        time.sleep(quiet)
        assert len(self.changes) == count


class Manager:
    """One manager's storage: a backend that follows the others' changes into an ``Inbox``."""

    def __init__(self, options: dict[str, Any], manager_id: str) -> None:
        self.backend = PostgresBackend(parse_options(options))
        self.backend.migrate()
        self.inbox = Inbox()
        self.stop: Callable[[], None] = self.backend.follow_changes(manager_id, self.inbox)

    @property
    def follower(self) -> follow.Follower:
        [only] = self.backend._followers
        return only

    def close(self) -> None:
        self.stop()
        self.backend.close()


@pytest.fixture
def managers(pg_options: dict[str, Any]) -> Iterator[tuple[Manager, Manager]]:
    a = Manager(pg_options, "manager-a")
    b = Manager(pg_options, "manager-b")
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def admin(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


def gone(admin: psycopg.Connection[Any], pid: int, timeout: float = WAIT) -> None:
    """Wait until server process ``pid`` has exited."""
    deadline = time.monotonic() + timeout
    while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() is not None:
        assert time.monotonic() < deadline, f"server process {pid} still there"
        time.sleep(0.02)


def test_the_postgres_backend_is_a_change_follower(managers: tuple[Manager, Manager]) -> None:
    assert isinstance(managers[0].backend, ChangeFollower)


def test_changes_applied_through_one_manager_reach_the_other_complete_and_in_order(
    managers: tuple[Manager, Manager],
) -> None:
    a, b = managers
    feed = Feed(a.backend)
    web = make("web", labels={"app": "web", "tier": "front"}, data={"phase": "Pending", "ip": None})
    db = make("db", namespace="data", labels={"app": "db"}, data={"phase": "Running", "ports": [5432]})
    applied = feed(state(web, db))
    applied += feed(state(make("web", rv="2", labels={"app": "web"}, data={"phase": "Running", "ip": "10.0.0.7"}), db))
    applied += feed(state(make("svc", kind="services", data={"type": "ClusterIP"}), delta=True,
                          deletions=[ResourceKey("pods", "data", "db")]))  # fmt: skip
    assert summary(applied) == [  # a FULL's changes in key order: data/db before default/web
        ("ADDED", "pods", "db", "uid-pods-data-db"),
        ("ADDED", "pods", "web", "uid-pods-default-web"),
        ("MODIFIED", "pods", "web", "uid-pods-default-web"),
        ("ADDED", "services", "svc", "uid-services-default-svc"),
        ("DELETED", "pods", "db", "uid-pods-data-db"),
    ]
    got = b.inbox.wait_for(len(applied))
    # Every field as the reconciler made it: versions, times, changed fields, labels and data.
    assert got == applied
    modified = got[2]
    assert modified.type is ChangeType.MODIFIED and modified.changed_fields == ("ip", "phase", "labels")
    assert modified.old_resource_version == "1" and modified.new_resource_version == "2"
    assert modified.resource is not None and modified.resource.labels == {"app": "web"}
    assert modified.resource.data == {"phase": "Running", "ip": "10.0.0.7"}
    assert modified.applied_at == feed.clock - timedelta(seconds=1)
    assert modified.observed_at == modified.applied_at - timedelta(milliseconds=500)
    assert got[4].type is ChangeType.DELETED and got[4].resource is None
    # One call per apply here (each is small), in commit order.
    assert [len(call) for call in b.inbox.calls] == [2, 1, 2]
    # A manager never gets its own changes back.
    b.inbox.stays(len(applied))
    assert a.inbox.changes == []


def test_both_ways_and_several_clusters(managers: tuple[Manager, Manager]) -> None:
    a, b = managers
    east, west = Feed(a.backend, cluster="east"), Feed(b.backend, cluster="west")
    from_a = east(state(make("a1"), make("a2")))
    from_b = west(state(make("b1")))
    from_a += east(state(make("a1"), make("a2", rv="2", data={"phase": "Failed"})))
    assert b.inbox.wait_for(3) == from_a
    assert a.inbox.wait_for(1) == from_b
    assert {c.cluster for c in b.inbox.changes} == {"east"}


def test_a_large_apply_arrives_in_batches_in_apply_order(managers: tuple[Manager, Manager]) -> None:
    a, b = managers
    pods = [make(f"p{i:05d}", namespace=f"ns{i % 7}", labels={"i": str(i)}) for i in range(2 * follow.BATCH + 10)]
    applied = Feed(a.backend)(state(*pods))
    got = b.inbox.wait_for(len(applied))
    assert [c.name for c in got] == [c.name for c in applied]
    assert [len(call) for call in b.inbox.calls] == [follow.BATCH, follow.BATCH, 10]


def test_stop_ends_the_listening_thread_promptly(managers: tuple[Manager, Manager]) -> None:
    a, b = managers
    follower = b.follower
    assert follower.running
    started = time.monotonic()
    b.stop()
    assert time.monotonic() - started < 2 * follow.POLL + 0.5
    assert not follower.running
    b.stop()  # twice is harmless
    Feed(a.backend)(state(make("late")))
    b.inbox.stays(0)


def test_close_stops_the_followers(pg_options: dict[str, Any]) -> None:
    m = Manager(pg_options, "manager-a")
    follower = m.follower
    m.backend.close()
    assert not follower.running


def test_a_killed_listening_connection_is_reopened_and_what_was_committed_meanwhile_arrives(
    pg_options: dict[str, Any], admin: psycopg.Connection[Any]
) -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    a = Manager(pg_options, "manager-a")
    east = Feed(a.backend, cluster="east")
    east(state(make("early")))  # before B follows: not owed to B, even by a catch-up
    # B waits a full second before reconnecting: long enough to commit in the gap.
    b = Manager({**pg_options, "retry_initial_backoff": "1s"}, "manager-b")
    try:
        west = Feed(b.backend, cluster="west")
        before = east(state(make("early"), make("before")))
        assert b.inbox.wait_for(1) == before
        pid = b.follower.backend_pid
        assert pid is not None
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        gone(admin, pid)
        # Committed while B listens nowhere: A's changes (owed to B) and B's own (never delivered to B).
        meanwhile = east(state(make("early"), make("before"), make("meanwhile")))
        west(state(make("own")))
        got = b.inbox.wait_for(2)
        assert got == before + meanwhile
        assert b.follower.backend_pid not in (None, pid)
        after = east(state(make("early"), make("before"), make("meanwhile"), make("after")))
        assert b.inbox.wait_for(3) == before + meanwhile + after
        b.inbox.stays(3)
        assert a.inbox.wait_for(1)[0].name == "own"
        assert any("following other managers' changes failed" in m for m in messages)
        assert any("delivered the 1 applies committed meanwhile" in m for m in messages)
    finally:
        logger.remove(sink)
        a.close()
        b.close()


def test_a_manager_without_history_is_named_once_and_delivers_nothing(
    managers: tuple[Manager, Manager],
) -> None:
    a, b = managers
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        feed = Feed(a.backend, history=False)
        feed(state(make("x")))
        feed(state(make("x"), make("y")))
        # A change with history, after them, still arrives: the follower kept going.
        recorded = Feed(a.backend, cluster="west")(state(make("z")))
        assert b.inbox.wait_for(1) == recorded
    finally:
        logger.remove(sink)
    assert [c.name for c in a.backend.history(HistoryQuery())] == ["z"]
    # The follower names the manager once; that manager says it once too, in its own log.
    assert len([m for m in messages if "manager-a keeps no history" in m]) == 1, messages
    assert len([m for m in messages if "history is off on this manager" in m]) == 1, messages


def test_schemas_do_not_hear_each_other(pg_options: dict[str, Any], pg_dsn: str) -> None:
    from navigator_plugin_postgres.testing import fresh_schema

    a = Manager(pg_options, "manager-a")
    other = Manager({"dsn": pg_dsn, "schema": fresh_schema()}, "manager-b")
    try:
        Feed(a.backend)(state(make("x")))
        other.inbox.stays(0)
    finally:
        a.close()
        other.close()
    assert follow.channel("s" * 63) != follow.channel("s" * 62 + "t")
    assert len(follow.channel("s" * 63)) <= 63


def test_a_rolled_back_apply_is_not_announced(managers: tuple[Manager, Manager]) -> None:
    a, b = managers
    feed = Feed(a.backend)
    with pytest.raises(Exception, match="applying a state"):
        feed(state(make("ok"), make("bad\x00name")))
    applied = feed(state(make("ok")))
    assert b.inbox.wait_for(1) == applied
    b.inbox.stays(1)


def test_managers_limited_to_reading_and_writing_rows_follow_each_other(
    pg_dsn: str, pg_options: dict[str, Any], admin: psycopg.Connection[Any]
) -> None:
    role = f"navigator_limited_{secrets.token_hex(4)}"
    admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        owner = PostgresBackend(parse_options(pg_options))
        owner.migrate()
        owner.close()
        schema = pg_options["schema"]
        admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        admin.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        limited = {**pg_options, "dsn": make_conninfo(pg_dsn, user=role)}
        a, b = Manager(limited, "manager-a"), Manager(limited, "manager-b")
        try:
            applied = Feed(a.backend)(state(make("x", labels={"app": "x"})))
            assert b.inbox.wait_for(1) == applied
        finally:
            a.close()
            b.close()
    finally:
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')


def test_a_very_long_manager_id_is_named_by_a_digest(pg_options: dict[str, Any]) -> None:
    long_id = "manager-" + "x" * 400
    assert follow.manager_tag(long_id).startswith("#") and follow.manager_tag("short") == "short"
    a, b = Manager(pg_options, long_id), Manager(pg_options, long_id + "-other")
    try:
        applied = Feed(a.backend)(state(make("x")))
        assert b.inbox.wait_for(1) == applied
        a.inbox.stays(0)
    finally:
        a.close()
        b.close()


def test_notifications_it_does_not_understand_are_logged_once_and_passed_over(
    managers: tuple[Manager, Manager], admin: psycopg.Connection[Any], pg_options: dict[str, Any]
) -> None:
    a, b = managers
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        for payload in ("not json", '{"v": 99}', '{"v": 1, "n": 3}', "not json"):
            admin.execute("SELECT pg_notify(%s, %s)", [follow.channel(pg_options["schema"]), payload])
        applied = Feed(a.backend)(state(make("x")))
        assert b.inbox.wait_for(1) == applied
    finally:
        logger.remove(sink)
    # Once per manager (both listen on the channel), however many there were.
    assert len([m for m in messages if "unknown format" in m]) == 2, messages


def test_a_failing_deliver_is_logged_and_the_next_changes_still_arrive(pg_options: dict[str, Any]) -> None:
    calls: list[list[str]] = []

    def deliver(changes: Sequence[Change]) -> None:
        calls.append([c.name for c in changes])
        if len(calls) == 1:
            raise RuntimeError("the feed broke")

    a = Manager(pg_options, "manager-a")
    b = PostgresBackend(parse_options(pg_options))
    stop = b.follow_changes("manager-b", deliver)
    try:
        feed = Feed(a.backend)
        feed(state(make("first")))
        feed(state(make("first"), make("second")))
        deadline = time.monotonic() + WAIT
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert calls == [["first"], ["second"]]
    finally:
        stop()
        b.close()
        a.close()


def test_no_deliver_after_stop_returns(pg_options: dict[str, Any]) -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[float] = []

    def slow(changes: Sequence[Change]) -> None:
        entered.set()
        release.wait(1.0)
        calls.append(time.monotonic())

    a = Manager(pg_options, "manager-a")
    b = PostgresBackend(parse_options(pg_options))
    stop = b.follow_changes("manager-b", slow)
    try:
        feed = Feed(a.backend)
        feed(state(make("one")))
        assert entered.wait(WAIT)
        feed(state(make("one"), make("two")))  # queued behind the slow call
        stop()  # waits for the call in progress, then nothing more
        stopped = time.monotonic()
        time.sleep(0.5)
        assert len(calls) == 1 and calls[0] <= stopped
    finally:
        release.set()
        b.close()
        a.close()


def test_what_is_remembered_is_forgotten_after_a_while_and_bounded() -> None:
    now = [0.0]
    seen = follow.Remembered(keep_for=10.0, at_most=3, clock=lambda: now[0])
    seen.add(("east", "1"))
    now[0] = 5.0
    seen.add(("east", "2"))
    assert ("east", "1") in seen and ("east", "2") in seen
    now[0] = 12.0
    seen.add(("east", "3"))
    assert ("east", "1") not in seen and ("east", "2") in seen
    seen.add(("east", "4"))
    seen.add(("east", "5"))
    assert ("east", "2") not in seen and all(("east", x) in seen for x in "345")


def test_two_followers_of_one_backend_each_get_every_change(managers: tuple[Manager, Manager]) -> None:
    a, b = managers
    second = Inbox()
    stop = b.backend.follow_changes("manager-b", second)
    try:
        applied = Feed(a.backend)(state(make("x"), make("y")))
        assert b.inbox.wait_for(2) == applied
        assert second.wait_for(2) == applied
    finally:
        stop()


def test_an_apply_cut_off_by_a_lost_connection_is_finished_after_the_reconnect(
    pg_options: dict[str, Any], pg_dsn: str
) -> None:
    got: list[Change] = []
    done = threading.Event()
    b = PostgresBackend(parse_options(pg_options))
    b.migrate()
    total = 2 * follow.BATCH + 10

    def deliver(changes: Sequence[Change]) -> None:
        got.extend(changes)
        if len(got) == follow.BATCH:  # after the first batch of the big apply: its connection dies
            [follower] = b._followers
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [follower.backend_pid])
        if len(got) >= total:
            done.set()

    a = Manager(pg_options, "manager-a")
    stop = b.follow_changes("manager-b", deliver)
    try:
        applied = Feed(a.backend)(state(*[make(f"p{i:05d}") for i in range(total)]))
        assert done.wait(WAIT)
        time.sleep(0.3)
        assert [c.name for c in got] == [c.name for c in applied]
    finally:
        stop()
        b.close()
        a.close()


def test_changes_pruned_before_they_were_read_are_counted_in_a_warning(
    pg_options: dict[str, Any], admin: psycopg.Connection[Any]
) -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    entered, release = threading.Event(), threading.Event()
    got: list[str] = []

    def deliver(changes: Sequence[Change]) -> None:
        entered.set()
        release.wait(WAIT)
        got.extend(c.name for c in changes)

    a = Manager(pg_options, "manager-a")
    b = PostgresBackend(parse_options(pg_options))
    stop = b.follow_changes("manager-b", deliver)
    try:
        feed = Feed(a.backend)
        feed(state(make("kept")))
        assert entered.wait(WAIT)  # the follower is busy with the first apply
        feed(state(make("kept"), make("gone1"), make("gone2")))
        admin.execute(f'DELETE FROM "{pg_options["schema"]}".history WHERE name LIKE %s', ["gone%"])
        release.set()
        deadline = time.monotonic() + WAIT
        while not any("were pruned" in m for m in messages) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        logger.remove(sink)
        stop()
        b.close()
        a.close()
    assert got == ["kept"]
    assert any("2 of the 2 changes manager manager-a applied to east were pruned" in m for m in messages), messages


def test_after_a_long_outage_what_was_missed_is_said_not_guessed(
    pg_options: dict[str, Any], admin: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow, "CATCH_UP_LIMIT", 0.5)
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    a = Manager(pg_options, "manager-a")
    b = Manager({**pg_options, "retry_initial_backoff": "1s"}, "manager-b")
    try:
        east = Feed(a.backend)
        pid = b.follower.backend_pid
        assert pid is not None
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        gone(admin, pid)
        east(state(make("missed")))
        # Said once listening again (so what comes next is heard).
        deadline = time.monotonic() + WAIT
        while not any("committed meanwhile are not delivered" in m for m in messages):
            assert time.monotonic() < deadline, messages
            time.sleep(0.02)
        after = east(state(make("missed"), make("after")))
        assert b.inbox.wait_for(1) == after
        b.inbox.stays(1)
    finally:
        logger.remove(sink)
        a.close()
        b.close()
