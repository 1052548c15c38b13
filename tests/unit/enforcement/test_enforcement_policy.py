"""The CLA verdict: signed / exempt / unsigned / unknown."""

from __future__ import annotations

import pytest

from undersign.enforcement.contributors import Contributor
from undersign.enforcement.policy import Exemptions, Verdict, compile_login_pattern, evaluate


def account(
    login: str, github_id: int, account_type: str = "User", *, verified: bool = True
) -> Contributor:
    return Contributor(
        kind="github",
        github_id=github_id,
        login=login,
        account_type=account_type if verified else None,
        sources=("author",),
        login_verified=verified,
    )


def unknown(email: str, name: str = "Someone") -> Contributor:
    return Contributor(kind="unknown", name=name, email=email, sources=("author",))


ALICE = account("alice", 1)
BOB = account("bob", 2)
DEPENDABOT = account("dependabot[bot]", 49699333, "Bot")


def test_buckets_and_counts() -> None:
    jane = unknown("jane@example.com")
    verdict = evaluate(
        [ALICE, BOB, DEPENDABOT, jane], {1}, Exemptions(bot_ids=frozenset({49699333}))
    )
    assert verdict == Verdict(signed=[ALICE], exempt=[DEPENDABOT], unsigned=[BOB], unknown=[jane])
    assert verdict.total == 3  # exempt people do not count in "x of y"
    assert verdict.state == "failure"
    assert not verdict.passed


def test_everyone_signed_passes() -> None:
    verdict = evaluate([ALICE, BOB], [1, 2])
    assert verdict.passed and verdict.state == "success" and verdict.total == 2


def test_unknown_alone_fails() -> None:
    verdict = evaluate([unknown("x@example.com")], set())
    assert verdict.state == "failure"
    assert verdict.unknown and not verdict.unsigned


def test_empty_pull_request_succeeds_with_nobody_counted() -> None:
    verdict = evaluate([], set())
    assert verdict.state == "success"
    assert verdict.total == 0 and verdict.contributors == []


def test_signature_matches_by_id_after_rename() -> None:
    renamed = account("alice-new-name", 1)
    assert evaluate([renamed], {1}).signed == [renamed]
    impostor = account("alice", 999)  # someone who took over the old login
    assert evaluate([impostor], {1}).unsigned == [impostor]


def test_duplicate_identities_count_once() -> None:
    verdict = evaluate([ALICE, account("alice-renamed", 1), BOB, BOB], set())
    assert verdict.unsigned == [ALICE, BOB]
    assert verdict.total == 2


def test_signed_takes_precedence_over_exempt() -> None:
    verdict = evaluate([ALICE], {1}, Exemptions(member_ids=frozenset({1})))
    assert verdict.signed == [ALICE] and verdict.exempt == []


# --- bots -----------------------------------------------------------------------------------


def test_bot_exempt_by_type_and_id() -> None:
    assert evaluate([DEPENDABOT], set(), Exemptions(bot_ids=frozenset({49699333}))).exempt == [
        DEPENDABOT
    ]


def test_bot_type_with_unlisted_id_is_not_exempt_unless_all_bots() -> None:
    other_bot = account("other[bot]", 77, "Bot")
    assert evaluate([other_bot], set(), Exemptions(bot_ids=frozenset({49699333}))).unsigned == [
        other_bot
    ]
    assert evaluate([other_bot], set(), Exemptions(all_bots=True)).exempt == [other_bot]


def test_user_with_bot_looking_login_is_not_exempt_by_type() -> None:
    # Only GitHub's "type" says bot; neither the "[bot]" suffix nor the id alone does.
    fake = account("dependabot[bot]", 49699333, "User")
    for exemptions in (Exemptions(bot_ids=frozenset({49699333})), Exemptions(all_bots=True)):
        assert evaluate([fake], set(), exemptions).unsigned == [fake]


def test_bot_without_api_type_is_not_exempt() -> None:
    from_noreply = account("dependabot[bot]", 49699333, verified=False)
    verdict = evaluate(
        [from_noreply], set(), Exemptions(bot_ids=frozenset({49699333}), all_bots=True)
    )
    assert verdict.unsigned == [from_noreply]


# --- allowlist ------------------------------------------------------------------------------


def test_allowlist_bot_entry_is_literal() -> None:
    exemptions = Exemptions(allowlist=("renovate[bot]",))
    renovate = account("renovate[bot]", 29139614, "Bot")
    assert evaluate([renovate], set(), exemptions).exempt == [renovate]
    # With glob semantics "[bot]" would be a character class matching "renovateb" / "renovatet".
    for login in ("renovateb", "renovatet", "renovate"):
        lookalike = account(login, 5)
        assert evaluate([lookalike], set(), exemptions).unsigned == [lookalike]


@pytest.mark.parametrize(
    ("pattern", "login", "matches"),
    [
        ("*[bot]", "renovate[bot]", True),
        ("*[bot]", "renovate", False),
        ("*[bot]", "renovateb", False),
        ("ci-*", "ci-runner", True),
        ("ci-*", "ci-", True),
        ("ci-*", "xci-runner", False),
        ("*-bot", "deploy-bot", True),
        ("a*c", "abbbc", True),
        ("a?c", "abc", False),
        ("a?c", "a?c", True),
        ("ALICE", "alice", True),
        ("@alice", "Alice", True),
        ("alice", "alice2", False),
        ("ali.e", "alice", False),
    ],
)
def test_login_patterns(pattern: str, login: str, matches: bool) -> None:
    compiled = compile_login_pattern(pattern)
    assert compiled is not None
    assert (compiled.fullmatch(login.casefold()) is not None) is matches
    assert Exemptions(allowlist=(pattern,)).allowlisted(login) is matches


def test_blank_allowlist_entries_are_ignored() -> None:
    assert compile_login_pattern("  ") is None
    assert not Exemptions(allowlist=("", " ", "@")).allowlisted("alice")


def test_allowlist_is_case_insensitive() -> None:
    mixed_case = account("Alice", 1)
    assert evaluate([mixed_case], set(), Exemptions(allowlist=("alice",))).exempt == [mixed_case]
    assert evaluate([ALICE], set(), Exemptions(allowlist=("ALICE",))).exempt == [ALICE]


def test_allowlist_ignores_logins_not_from_the_api() -> None:
    # "123+dependabot[bot]@users.noreply.github.com" is text anyone can put in a commit.
    spoofed = account("dependabot[bot]", 123, verified=False)
    verdict = evaluate([spoofed], set(), Exemptions(allowlist=("dependabot[bot]", "*")))
    assert verdict.unsigned == [spoofed]


def test_allowlist_accepts_a_bare_string() -> None:
    exemptions = Exemptions(allowlist="alice")  # type: ignore[arg-type]
    assert exemptions.allowlist == ("alice",)
    assert exemptions.allowlisted("alice")


# --- members --------------------------------------------------------------------------------


def test_members_exempt_by_id() -> None:
    verdict = evaluate([ALICE, BOB], set(), Exemptions(member_ids=frozenset({2})))
    assert verdict.exempt == [BOB]
    assert verdict.unsigned == [ALICE]
    assert Exemptions(member_ids=frozenset({2})).reason(BOB) == "member"


def test_unknown_contributors_are_never_exempt() -> None:
    jane = unknown("jane@example.com", name="alice")
    verdict = evaluate([jane], set(), Exemptions(allowlist=("*",), all_bots=True))
    assert verdict.unknown == [jane]
