"""Reading contributors from GitHub commit JSON (shape: REFERENCE.md §2.2)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from undersign.enforcement.contributors import (
    Contributor,
    commit_emails,
    contributors_from_commits,
    legacy_noreply_login,
    noreply_login,
    noreply_user_id,
    parse_co_authors,
    parse_noreply,
)

# --------------------------------------------------------------------------------------------
# Realistic commit objects, as "list commits on a pull request" returns them
# --------------------------------------------------------------------------------------------


def simple_user(login: str, user_id: int, user_type: str = "User") -> dict[str, Any]:
    return {
        "login": login,
        "id": user_id,
        "node_id": f"MDQ6VXNlcj{user_id}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "followers_url": f"https://api.github.com/users/{login}/followers",
        "repos_url": f"https://api.github.com/users/{login}/repos",
        "type": user_type,
        "user_view_type": "public",
        "site_admin": False,
    }


WEB_FLOW = simple_user("web-flow", 19864447)


def make_commit(
    sha: str,
    *,
    name: str | None,
    email: str | None,
    author: dict[str, Any] | None = None,
    committer: dict[str, Any] | None = WEB_FLOW,
    committer_name: str = "GitHub",
    committer_email: str = "noreply@github.com",
    message: str = "Fix a typo in the README",
) -> dict[str, Any]:
    base = "https://api.github.com/repos/octo-org/widgets"
    return {
        "sha": sha,
        "node_id": f"C_kwDO{sha[:10]}",
        "url": f"{base}/commits/{sha}",
        "html_url": f"https://github.com/octo-org/widgets/commit/{sha}",
        "comments_url": f"{base}/commits/{sha}/comments",
        "commit": {
            "author": {"name": name, "email": email, "date": "2024-05-01T12:00:00Z"},
            "committer": {
                "name": committer_name,
                "email": committer_email,
                "date": "2024-05-01T12:05:00Z",
            },
            "message": message,
            "tree": {"sha": "9" * 40, "url": f"{base}/git/trees/{'9' * 40}"},
            "url": f"{base}/git/commits/{sha}",
            "comment_count": 0,
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "author": author,
        "committer": committer,
        "parents": [{"sha": "0" * 40, "url": f"{base}/commits/{'0' * 40}"}],
    }


ALICE = simple_user("alice", 1001)
BOB = simple_user("bob", 1002)


# --------------------------------------------------------------------------------------------
# Authors
# --------------------------------------------------------------------------------------------


def test_linked_author_is_a_verified_github_contributor() -> None:
    commit = make_commit("a" * 40, name="Alice A.", email="alice@example.com", author=ALICE)
    [alice] = contributors_from_commits([commit])
    assert alice == Contributor(
        kind="github",
        github_id=1001,
        login="alice",
        account_type="User",
        name="Alice A.",
        email="alice@example.com",
        sources=("author",),
        login_verified=True,
    )


@pytest.mark.parametrize("top_level_author", [None, {}])
def test_unlinked_author_null_or_empty_is_unknown(top_level_author: Any) -> None:
    commit = make_commit("b" * 40, name="Jane Doe", email="jane@example.com")
    commit["author"] = top_level_author
    [jane] = contributors_from_commits([commit])
    assert jane.kind == "unknown"
    assert jane.github_id is None
    assert (jane.name, jane.email, jane.sources) == ("Jane Doe", "jane@example.com", ("author",))


def test_author_dict_without_integer_id_is_not_trusted() -> None:
    commit = make_commit("b" * 40, name="Jane", email="jane@example.com", author={"login": "x"})
    [jane] = contributors_from_commits([commit])
    assert jane.kind == "unknown"


def test_committer_is_never_counted() -> None:
    maintainer = simple_user("maintainer", 42)
    commits = [
        # web edit / merge: committed by web-flow
        make_commit("c" * 40, name="Alice", email="alice@example.com", author=ALICE),
        # maintainer rebased someone else's unlinked commit
        make_commit(
            "d" * 40,
            name="Jane Doe",
            email="jane@example.com",
            author=None,
            committer=maintainer,
            committer_name="Maintainer",
            committer_email="maintainer@example.com",
        ),
    ]
    people = contributors_from_commits(commits)
    assert [p.key for p in people] == [("github", 1001), ("email", "jane@example.com")]
    assert all(p.github_id not in (42, WEB_FLOW["id"]) for p in people)


def test_unlinked_author_with_noreply_id_becomes_github_by_id() -> None:
    commit = make_commit("e" * 40, name="Alice", email="1001+alice@users.noreply.github.com")
    [alice] = contributors_from_commits([commit])
    assert (alice.kind, alice.github_id, alice.login) == ("github", 1001, "alice")
    assert alice.login_verified is False  # the login part of an email is free text


def test_unlinked_author_with_ghes_noreply() -> None:
    commit = make_commit("e" * 40, name="Al", email="7+alice@users.noreply.ghe.example.com")
    assert contributors_from_commits([commit])[0].kind == "unknown"
    [alice] = contributors_from_commits([commit], noreply_domain="users.noreply.ghe.example.com")
    assert alice.github_id == 7


def test_missing_commit_metadata_does_not_crash() -> None:
    odd: list[Any] = [
        {"sha": "f" * 40, "commit": None, "author": None},
        {"sha": "1" * 40},
        "not a commit",
        make_commit("2" * 40, name=None, email=None),
    ]
    people = contributors_from_commits(odd)
    assert len(people) == 1  # every author-less commit is the same faceless "unknown"
    assert people[0].kind == "unknown"


# --------------------------------------------------------------------------------------------
# Co-authors
# --------------------------------------------------------------------------------------------


def _with_trailers(*trailers: str) -> str:
    return "Add widget support\n\nLonger explanation.\n\n" + "\n".join(trailers) + "\n"


def test_co_author_noreply_maps_to_account_id() -> None:
    message = _with_trailers("Co-authored-by: Bob <1002+bob@users.noreply.github.com>")
    commit = make_commit(
        "3" * 40, name="Alice", email="a@example.com", author=ALICE, message=message
    )
    alice, bob = contributors_from_commits([commit])
    assert alice.github_id == 1001
    assert (bob.kind, bob.github_id, bob.login, bob.sources) == (
        "github",
        1002,
        "bob",
        ("co-author",),
    )


def test_co_author_with_plain_email_is_unknown() -> None:
    message = _with_trailers("Co-authored-by: Carol <carol@example.org>")
    commit = make_commit(
        "4" * 40, name="Alice", email="a@example.com", author=ALICE, message=message
    )
    _, carol = contributors_from_commits([commit])
    assert (carol.kind, carol.name, carol.email) == ("unknown", "Carol", "carol@example.org")
    assert carol.sources == ("co-author",)


def test_resolve_email_is_asked_for_every_address_but_noreply_ones() -> None:
    asked: list[str] = []
    proven = Contributor(kind="github", github_id=3003, login="carol", login_verified=True)

    def resolve(email: str) -> Contributor | None:
        asked.append(email)
        return proven if email == "carol@example.org" else None

    message = _with_trailers(
        "Co-authored-by: Carol <carol@example.org>",
        "Co-authored-by: Bob <1002+bob@users.noreply.github.com>",
        "Co-authored-by: Dan <dan@example.net>",
    )
    commits = [
        make_commit("5" * 40, name="Alice", email="a@example.com", author=ALICE, message=message),
        make_commit("6" * 40, name="Eve", email="eve@example.com", author=None),
    ]
    people = contributors_from_commits(commits, resolve_email=resolve)
    assert asked == ["a@example.com", "carol@example.org", "dan@example.net", "eve@example.com"]
    assert by_key_of(people)[("github", ALICE["id"])].login_verified  # GitHub's link kept
    by_key = {p.key: p for p in people}
    carol = by_key[("github", 3003)]
    assert (carol.login, carol.name, carol.email, carol.sources) == (
        "carol",
        "Carol",
        "carol@example.org",
        ("co-author",),
    )
    assert by_key[("email", "dan@example.net")].kind == "unknown"
    assert by_key[("email", "eve@example.com")].kind == "unknown"


def by_key_of(people: list[Contributor]) -> dict[tuple[str, int | str], Contributor]:
    return {p.key: p for p in people}


def test_a_proven_address_wins_over_githubs_link_to_another_account() -> None:
    """Issue 14: GitHub links the address to whoever lists it now; undersign counts the
    account that proved it (the author, a co-author and another commit alike)."""
    owner = Contributor(kind="github", github_id=4004, login="dana")

    def resolve(email: str) -> Contributor | None:
        return owner if email.casefold() == "work@corp.example" else None

    message = _with_trailers("Co-authored-by: D <WORK@corp.example>")
    commits = [
        make_commit("7" * 40, name="D", email="work@corp.example", author=ALICE),
        make_commit("8" * 40, name="A", email="a@example.com", author=ALICE, message=message),
    ]
    people = by_key_of(contributors_from_commits(commits, resolve_email=resolve))
    dana = people[("github", 4004)]
    assert (dana.email, dana.login_verified) == ("work@corp.example", False)
    assert set(dana.sources) == {"author", "co-author"}
    # Alice still counts for her own address on the second commit.
    assert people[("github", ALICE["id"])].sources == ("author",)
    assert len(people) == 2


def test_commit_emails_lists_authors_and_co_authors_case_folded_once() -> None:
    message = _with_trailers("Co-authored-by: C <Carol@Example.org>")
    commits = [
        make_commit("9" * 40, name="A", email="A@Example.com", author=ALICE, message=message),
        make_commit("a" * 40, name="A", email="a@example.com", author=ALICE),
    ]
    assert commit_emails(commits) == ["a@example.com", "carol@example.org"]


def test_co_author_email_linked_on_another_commit_is_that_account() -> None:
    message = _with_trailers("Co-authored-by: Bob B <BOB@example.com>")
    commits = [
        make_commit("7" * 40, name="Alice", email="a@example.com", author=ALICE, message=message),
        make_commit("8" * 40, name="Bob", email="bob@example.com", author=BOB),
    ]
    people = contributors_from_commits(commits)
    assert [p.key for p in people] == [("github", 1001), ("github", 1002)]
    bob = people[1]
    assert bob.sources == ("co-author", "author")
    assert bob.login == "bob" and bob.login_verified  # the API login wins over nothing


def test_author_and_co_author_with_same_id_merge() -> None:
    message = _with_trailers("Co-authored-by: Alice <1001+alice@users.noreply.github.com>")
    commit = make_commit(
        "9" * 40, name="Alice", email="a@example.com", author=ALICE, message=message
    )
    [alice] = contributors_from_commits([commit])
    assert alice.sources == ("author", "co-author")
    assert alice.login_verified and alice.account_type == "User"


def test_renamed_account_counts_once_by_id() -> None:
    commits = [
        make_commit("a1" * 20, name="Alice", email="a@example.com", author=ALICE),
        make_commit(
            "a2" * 20,
            name="Alice",
            email="a@example.com",
            author=simple_user("alice-renamed", 1001),
        ),
    ]
    [alice] = contributors_from_commits(commits)
    assert alice.github_id == 1001
    assert alice.login == "alice"  # first seen; the id is what matters


def test_unverified_login_is_replaced_by_verified_one_on_merge() -> None:
    message = _with_trailers("Co-authored-by: A <1001+old-name@users.noreply.github.com>")
    commits = [
        make_commit("b1" * 20, name="Carol", email="c@example.com", author=None, message=message),
        make_commit("b2" * 20, name="Alice", email="a@example.com", author=ALICE),
    ]
    people = contributors_from_commits(commits)
    alice = next(p for p in people if p.github_id == 1001)
    assert (alice.login, alice.login_verified, alice.account_type) == ("alice", True, "User")


def test_dedupe_unknowns_by_casefolded_email_and_keep_first_appearance_order() -> None:
    commits = [
        make_commit("c1" * 20, name="Jane", email="Jane@Example.com"),
        make_commit("c2" * 20, name="Bob", email="bob@example.com", author=BOB),
        make_commit(
            "c3" * 20,
            name="J. Doe",
            email="jane@example.COM",
            message=_with_trailers("Co-authored-by: Jane <JANE@example.com>"),
        ),
    ]
    people = contributors_from_commits(commits)
    assert [p.key for p in people] == [("email", "jane@example.com"), ("github", 1002)]
    assert people[0].name == "Jane"
    assert people[0].sources == ("author", "co-author")


def test_contributor_invariants() -> None:
    with pytest.raises(ValueError):
        Contributor(kind="github", github_id=None)
    with pytest.raises(ValueError):
        Contributor(kind="unknown", github_id=5)


# --------------------------------------------------------------------------------------------
# parse_co_authors
# --------------------------------------------------------------------------------------------


def test_parse_basic_and_case_insensitive_token() -> None:
    message = _with_trailers(
        "Signed-off-by: Alice <a@example.com>",
        "Co-authored-by: Bob Smith <bob@example.com>",
        "CO-AUTHORED-BY: Carol <carol@example.com>",
        "co-authored-by:Dan<dan@example.com>",
    )
    assert parse_co_authors(message) == [
        ("Bob Smith", "bob@example.com"),
        ("Carol", "carol@example.com"),
        ("Dan", "dan@example.com"),
    ]


def test_parse_tolerates_crlf_extra_spaces_and_duplicates() -> None:
    message = (
        "Subject\r\n\r\nBody\r\n\r\n"
        "Co-authored-by:    Bob   Smith    <bob@example.com>   \r\n"
        "Co-authored-by : Bob again <BOB@EXAMPLE.COM>\r\n"
        "Co-authored-by: Carol <carol@example.com>\r\n"
    )
    assert parse_co_authors(message) == [
        ("Bob   Smith", "bob@example.com"),
        ("Carol", "carol@example.com"),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "Co-authored-by: Bob",
        "Co-authored-by: Bob bob@example.com",
        "Co-authored-by: Bob <bob.example.com>",
        "Co-authored-by: Bob <>",
        "Co-authored-by: Bob <@example.com>",
        "Co-authored-by: Bob <bob@>",
        "Co-authored-by: Bob <bob @example.com>",
        "Co-authored-by: Bob <bob@example.com> trailing",
    ],
)
def test_parse_rejects_lines_without_a_usable_email(line: str) -> None:
    assert parse_co_authors(_with_trailers(line)) == []


def test_only_the_trailer_block_counts() -> None:
    quoted_in_body = (
        "Squash of several commits\n\n"
        "Co-authored-by: Mid Body <mid@example.com>\n\n"
        "More description that ends the message.\n"
    )
    assert parse_co_authors(quoted_in_body) == []
    # A subject line alone is never a trailer block.
    assert parse_co_authors("Co-authored-by: Bob <bob@example.com>") == []
    # A final paragraph mixing prose and trailers without a git-generated trailer is prose.
    mixed = "Subject\n\nThanks to\nCo-authored-by: Bob <bob@example.com>\n"
    assert parse_co_authors(mixed) == []


def test_git_generated_trailer_allows_some_prose_in_the_block() -> None:
    # git's rule: with a Signed-off-by, >= 25% trailer lines make the paragraph a trailer block.
    message = (
        "Subject\n\n"
        "Reviewed in person\n"
        "Signed-off-by: Alice <a@example.com>\n"
        "Co-authored-by: Bob <bob@example.com>\n"
    )
    assert parse_co_authors(message) == [("Bob", "bob@example.com")]
    too_much_prose = (
        "Subject\n\n" + "prose line\n" * 7 + "Signed-off-by: A <a@example.com>\n"
        "Co-authored-by: Bob <bob@example.com>\n"
    )
    assert parse_co_authors(too_much_prose) == []


def test_continuation_lines_are_unfolded() -> None:
    message = "Subject\n\nCo-authored-by: Bob\n  Smith <bob@example.com>\n"
    assert parse_co_authors(message) == [("Bob Smith", "bob@example.com")]


def test_squash_merge_message_shape() -> None:
    message = (
        "Add widgets (#12)\n\n"
        "* Add widget\n\n"
        "* Fix lint\n\n"
        "---------\n\n"
        "Co-authored-by: Bob <1002+bob@users.noreply.github.com>\n"
        "Co-authored-by: Carol <carol@example.com>"
    )
    assert [email for _, email in parse_co_authors(message)] == [
        "1002+bob@users.noreply.github.com",
        "carol@example.com",
    ]


_trailer_ish = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}:{}<{}@{}>{}".format,
        st.sampled_from(["Co-authored-by", "co-authored-BY ", "Signed-off-by", "X", ""]),
        st.text(max_size=15),
        st.text(max_size=10),
        st.text(max_size=10),
        st.sampled_from(["", " ", "\r", " x"]),
    ),
    st.sampled_from(["", " ", "\r", "  cont", "#c", "(cherry picked from commit 1)"]),
)
_messages = st.one_of(
    st.text(),
    st.lists(_trailer_ish, max_size=12).map("\n".join),
)


def _rejoin(pairs: list[tuple[str, str]]) -> str:
    return "Subject\n\n" + "\n".join(f"Co-authored-by: {n} <{e}>" for n, e in pairs)


@given(_messages)
def test_parse_co_authors_properties(message: str) -> None:
    pairs = parse_co_authors(message)  # never raises
    assert all("@" in email for _, email in pairs)
    emails = [email.casefold() for _, email in pairs]
    assert len(emails) == len(set(emails))
    assert parse_co_authors(_rejoin(pairs)) == pairs


def test_old_style_noreply_is_the_login_holder_asked_only_when_nothing_else_knows() -> None:
    asked: list[str] = []
    holder = Contributor(kind="github", github_id=4004, login="Dora", login_verified=True)

    def resolve_login(login: str) -> Contributor | None:
        asked.append(login)
        return holder if login.casefold() == "dora" else None

    message = _with_trailers(
        "Co-authored-by: Dora <dora@users.noreply.github.com>",
        "Co-authored-by: Bob <1002+bob@users.noreply.github.com>",
        "Co-authored-by: Carol <carol@example.org>",
        "Co-authored-by: Gone <gone-away@users.noreply.github.com>",
        "Co-authored-by: Ally <alice-old@users.noreply.github.com>",
    )
    commits = [
        make_commit("5" * 40, name="Alice", email="a@example.com", author=ALICE, message=message),
        # GitHub linked this old-style address to alice: nobody needs to be asked about it.
        make_commit("6" * 40, name="A", email="alice-old@users.noreply.github.com", author=ALICE),
    ]
    people = contributors_from_commits(commits, resolve_login=resolve_login)
    assert asked == ["dora", "gone-away"]  # never a plain address, an id, or a linked one
    by_key = {p.key: p for p in people}
    dora = by_key[("github", 4004)]
    assert (dora.login, dora.name, dora.email, dora.sources) == (
        "Dora",
        "Dora",
        "dora@users.noreply.github.com",
        ("co-author",),
    )
    # Free text naming whoever holds the login today: never verified (no @mention, no
    # exemption), whatever the resolver says.
    assert (dora.login_verified, dora.account_type) == (False, None)
    gone = by_key[("email", "gone-away@users.noreply.github.com")]
    assert gone.kind == "unknown"  # no such account (or no person): as before
    assert ("email", "alice-old@users.noreply.github.com") not in by_key


def test_unlinked_old_style_noreply_author_is_the_login_holder() -> None:
    commit = make_commit("e" * 40, name="Dora", email="dora@users.noreply.github.com")
    assert contributors_from_commits([commit])[0].kind == "unknown"  # nobody to ask
    holder = Contributor(kind="github", github_id=4004, login="dora")
    [dora] = contributors_from_commits([commit], resolve_login=lambda login: holder)
    assert (dora.kind, dora.github_id, dora.sources) == ("github", 4004, ("author",))


def test_a_proven_old_style_noreply_address_is_not_asked_about() -> None:
    commit = make_commit("e" * 40, name="Dora", email="dora@users.noreply.github.com")
    proven = Contributor(kind="github", github_id=5005, login="dora")

    def resolve_login(login: str) -> Contributor | None:
        raise AssertionError("the proven owner answers first")

    [dora] = contributors_from_commits(
        [commit], resolve_email=lambda email: proven, resolve_login=resolve_login
    )
    assert dora.github_id == 5005


@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_parse_co_authors_never_raises_on_non_strings(value: object) -> None:
    assert parse_co_authors(value) == []  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Noreply emails
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "user_id", "login"),
    [
        ("12345+alice@users.noreply.github.com", 12345, "alice"),
        ("12345+Alice@USERS.NOREPLY.GITHUB.COM", 12345, "Alice"),
        ("49699333+dependabot[bot]@users.noreply.github.com", 49699333, "dependabot[bot]"),
        ("alice@users.noreply.github.com", None, "alice"),
        ("12345+not a login@users.noreply.github.com", 12345, None),
    ],
)
def test_noreply_decoding(email: str, user_id: int | None, login: str | None) -> None:
    assert noreply_user_id(email) == user_id
    assert noreply_login(email) == login


@pytest.mark.parametrize(
    "email",
    [
        "alice@example.com",
        "12345+alice@users.noreply.github.com.evil.com",
        "12345+alice@noreply.github.com",
        "0+alice@users.noreply.github.com",
        "-1+alice@users.noreply.github.com",
        "\uff11\uff12+alice@users.noreply.github.com",  # full-width digits are not an id
        "99999999999999999999999+a@users.noreply.github.com",
        "not a login@users.noreply.github.com",
        "",
    ],
)
def test_not_a_noreply_identity(email: str) -> None:
    assert noreply_user_id(email) is None
    assert parse_noreply(email) is None


@pytest.mark.parametrize(
    ("email", "login"),
    [
        ("alice@users.noreply.github.com", "alice"),
        ("Old-Timer@Users.Noreply.GitHub.com", "Old-Timer"),
        ("12345+alice@users.noreply.github.com", None),  # the id is the account: no lookup
        ("alice@example.com", None),
        ("not a login@users.noreply.github.com", None),
        ("alice@users.noreply.ghe.example.com", None),  # another host's noreply domain
        ("", None),
    ],
)
def test_legacy_noreply_login(email: str, login: str | None) -> None:
    assert legacy_noreply_login(email) == login


def test_legacy_noreply_login_on_ghes() -> None:
    domain = "users.noreply.ghe.example.com"
    assert legacy_noreply_login("alice@users.noreply.ghe.example.com", domain) == "alice"
    assert legacy_noreply_login("alice@users.noreply.github.com", domain) is None


def test_ghes_noreply_domain() -> None:
    email = "7+alice@users.noreply.ghe.example.com"
    assert noreply_user_id(email) is None
    assert noreply_user_id(email, "users.noreply.ghe.example.com") == 7
    assert noreply_user_id(email, "@Users.Noreply.GHE.example.com ") == 7
