"""The CLA verdict: signed / exempt / unsigned / unknown."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from undersign.agreements.allowlist import compile_login_pattern
from undersign.enforcement.agents import DEFAULT_BOT_IDS, KNOWN_AGENTS
from undersign.enforcement.contributors import Contributor, contributors_from_commits
from undersign.enforcement.policy import Exemptions, Verdict, evaluate


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


# --- the opener counts; agents by policy (issue 10) -------------------------------------------

COPILOT = account("Copilot", 198982749, "Bot")
MALLORY = account("mallory", 66)


def _co_author(email: str, github_id: int | None = None, login: str | None = None) -> Contributor:
    if github_id is None:
        return Contributor(kind="unknown", email=email, sources=("co-author",))
    return Contributor(
        kind="github", github_id=github_id, login=login, email=email, sources=("co-author",)
    )


def test_an_unsigned_opener_fails_whatever_the_authors() -> None:
    verdict = evaluate(
        [ALICE, DEPENDABOT], {1}, Exemptions(bot_ids=frozenset({49699333})), opener=MALLORY
    )
    assert verdict.state == "failure"
    assert verdict.opener_missing and verdict.unsigned[-1].sources == ("opener",)


def test_the_opener_who_also_authored_counts_once() -> None:
    verdict = evaluate([ALICE], {1}, opener=ALICE)
    assert verdict.passed and verdict.total == 1
    assert verdict.signed[0].sources == ("author", "opener")


def test_an_exempt_bot_opener_passes() -> None:
    verdict = evaluate([DEPENDABOT], set(), Exemptions(bot_ids=DEFAULT_BOT_IDS), opener=DEPENDABOT)
    assert verdict.passed


def test_require_human_agent_co_author_needs_no_signature() -> None:
    claude = _co_author("noreply@anthropic.com")
    verdict = evaluate([ALICE, claude], {1}, opener=ALICE)
    assert verdict.passed and verdict.agents == [claude] and verdict.total == 1


def test_refuse_fails_any_agent_contribution() -> None:
    claude = _co_author("NoReply@Anthropic.com")
    verdict = evaluate([ALICE, claude], {1}, opener=ALICE, agent_policy="refuse")
    assert verdict.state == "failure" and verdict.refused == [claude]


def test_agent_opener_needs_a_covered_person() -> None:
    alone = evaluate([COPILOT], set(), opener=COPILOT)
    assert alone.needs_human and alone.state == "failure"
    with_bot = evaluate(
        [COPILOT, DEPENDABOT], set(), Exemptions(bot_ids=frozenset({49699333})), opener=COPILOT
    )
    assert with_bot.needs_human  # a bot is not the person who asked
    helped = evaluate([COPILOT, _co_author("1+alice@x", 1, "alice")], {1}, opener=COPILOT)
    assert helped.passed and not helped.needs_human
    unsigned_human = evaluate([COPILOT, BOB], set(), opener=COPILOT)
    assert unsigned_human.state == "failure" and unsigned_human.unsigned == [BOB]


def test_all_bots_does_not_exempt_an_agent() -> None:
    verdict = evaluate([COPILOT], set(), Exemptions(all_bots=True), opener=COPILOT)
    assert verdict.state == "failure" and [a.github_id for a in verdict.agents] == [198982749]


def test_every_known_agent_has_an_id_or_an_address_and_a_source() -> None:
    for agent in KNOWN_AGENTS:
        assert (agent.github_ids or agent.trailer_emails) and agent.source
    assert not DEFAULT_BOT_IDS & {i for a in KNOWN_AGENTS for i in a.github_ids}


_IDS = st.integers(min_value=1, max_value=12)
_PEOPLE = st.builds(
    lambda github_id, kind, bot, verified, source: (
        Contributor(kind="unknown", email=f"p{github_id}@example.com", sources=(source,))
        if kind == "unknown"
        else Contributor(
            kind="github",
            github_id=github_id,
            login=f"user{github_id}[bot]" if bot else f"user{github_id}",
            account_type=("Bot" if bot else "User") if verified else None,
            login_verified=verified,
            sources=(source,),
        )
    ),
    _IDS,
    st.sampled_from(["github", "unknown"]),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["author", "co-author"]),
)
_AGENT_TRAILERS = st.lists(
    st.sampled_from(["noreply@anthropic.com", "cursoragent@cursor.com"]).map(_co_author),
    max_size=2,
)


@settings(max_examples=400, deadline=None)
@given(
    people=st.lists(_PEOPLE, max_size=8),
    agents=_AGENT_TRAILERS,
    signed=st.sets(_IDS),
    bot_ids=st.sets(_IDS),
    member_ids=st.sets(_IDS),
    all_bots=st.booleans(),
    allowlist=st.lists(st.sampled_from(["user1", "user*", "*[bot]", "*"]), max_size=2),
    policy=st.sampled_from(["require-human", "refuse"]),
    opener_id=st.integers(min_value=1, max_value=14),
    opener_bot=st.booleans(),
)
def test_no_authors_co_authors_or_exemptions_make_an_uncovered_opener_green(
    people: list[Contributor],
    agents: list[Contributor],
    signed: set[int],
    bot_ids: set[int],
    member_ids: set[int],
    all_bots: bool,
    allowlist: list[str],
    policy: str,
    opener_id: int,
    opener_bot: bool,
) -> None:
    """Property: whatever the commits claim, green needs the opener covered (signed, or
    exempt by the very exemptions in force, or an agent whose human is covered)."""
    login = f"user{opener_id}[bot]" if opener_bot else f"user{opener_id}"
    opener = account(login, opener_id, "Bot" if opener_bot else "User")
    exemptions = Exemptions(
        bot_ids=frozenset(bot_ids),
        all_bots=all_bots,
        allowlist=tuple(allowlist),
        member_ids=frozenset(member_ids),
    )
    verdict = evaluate(
        [*people, *agents],
        signed,
        exemptions,
        opener=opener,
        agent_policy=policy,  # type: ignore[arg-type]
    )
    opener_covered = opener_id in signed or exemptions.reason(opener) is not None
    if not opener_covered:
        assert verdict.state == "failure"
        assert verdict.opener_missing


_ADDRESSES = [f"p{n}@corp.example" for n in range(1, 7)]


@settings(max_examples=300, deadline=None)
@given(
    authored=st.lists(
        st.tuples(st.sampled_from(_ADDRESSES), st.one_of(st.none(), _IDS)), max_size=6
    ),
    owners=st.dictionaries(st.sampled_from(_ADDRESSES), _IDS),
    signed=st.sets(_IDS),
    allowlist=st.lists(st.sampled_from(["user1", "user*", "*"]), max_size=2),
    opener_id=st.integers(min_value=1, max_value=14),
)
def test_proven_addresses_never_cover_an_uncovered_opener(
    authored: list[tuple[str, int | None]],
    owners: dict[str, int],
    signed: set[int],
    allowlist: list[str],
    opener_id: int,
) -> None:
    """Property (issue 14): commits written with anyone's proven address, linked by GitHub
    to any account or to none, count as the proven owner, and still cannot turn a pull
    request green for an opener who is not covered; a proven owner's login is never taken
    as verified (so it can match no allowlist pattern)."""
    commits = [
        {
            "sha": f"{i:040x}",
            "commit": {"author": {"name": "X", "email": email}, "message": "m"},
            "author": None
            if linked is None
            else {"id": linked, "login": f"user{linked}", "type": "User"},
        }
        for i, (email, linked) in enumerate(authored)
    ]

    def resolve(email: str) -> Contributor | None:
        owner = owners.get(email.casefold())
        return None if owner is None else Contributor(kind="github", github_id=owner)

    people = contributors_from_commits(commits, resolve_email=resolve)
    for person in people:
        if person.email and person.email.casefold() in owners and person.sources == ("author",):
            assert person.github_id == owners[person.email.casefold()]
    opener = account(f"user{opener_id}", opener_id)
    exemptions = Exemptions(allowlist=tuple(allowlist))
    verdict = evaluate(people, signed, exemptions, opener=opener)
    for person in verdict.exempt:
        assert person.login_verified
    if opener_id not in signed and exemptions.reason(opener) is None:
        assert verdict.state == "failure" and verdict.opener_missing
