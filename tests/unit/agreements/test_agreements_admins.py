"""The admin scope kept in a session: instance admins by settings, stale after ten minutes,
a failed lookup never reused and allowing nothing."""

from __future__ import annotations

from undersign.agreements.admins import ADMIN_ANSWER_TTL, AdminScope


def test_an_instance_admin_comes_from_the_settings_never_the_session() -> None:
    forged = {"github_id": 5, "agreements": [1, 2], "checked_at": 0.0, "failure": None}
    assert AdminScope.from_json(forged, 5, admins={9}) == AdminScope(
        github_id=5, instance_admin=False, agreement_ids=frozenset({1, 2}), checked_at=0.0
    )
    root = AdminScope.from_json(None, 9, admins={9})
    assert root is not None and root.instance_admin and root.administers(123)
    assert not root.is_stale(10**12)


def test_a_scope_of_someone_else_or_malformed_is_ignored() -> None:
    stored = AdminScope(github_id=5, instance_admin=False, agreement_ids=frozenset({1}))
    assert AdminScope.from_json(stored.to_json(), 6, admins=()) is None
    assert AdminScope.from_json({"github_id": 5, "agreements": ["x"]}, 5, admins=()) is None
    assert AdminScope.from_json("nonsense", 5, admins=()) is None


def test_an_answer_is_trusted_for_ten_minutes() -> None:
    scope = AdminScope(5, False, frozenset({1}), checked_at=1000.0)
    assert scope.administers(1) and not scope.administers(2)
    assert not scope.is_stale(1000.0 + ADMIN_ANSWER_TTL)
    assert scope.is_stale(1000.0 + ADMIN_ANSWER_TTL + 1)
    restored = AdminScope.from_json(scope.to_json(), 5, admins=())
    assert restored == scope


def test_a_failed_lookup_allows_nothing() -> None:
    failed = AdminScope(5, False, frozenset({1}), checked_at=1000.0, failure="GitHub answered 502")
    assert not failed.administers(1)
