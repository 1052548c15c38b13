"""Rendering the commit status description and the pull request comment."""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from undersign.enforcement.checks import check_run_body
from undersign.enforcement.contributors import Contributor
from undersign.enforcement.policy import Verdict
from undersign.enforcement.report import (
    COMMENT_LIMIT,
    COMMENT_MARKER,
    DESCRIPTION_LIMIT,
    MAX_LISTED,
    comment_body,
    comment_needed,
    is_own_comment,
    report_description,
    status_description,
)

SIGN_URL = "https://cla.example.com/sign/acme"


def account(login: str, github_id: int) -> Contributor:
    return Contributor(
        kind="github", github_id=github_id, login=login, account_type="User", login_verified=True
    )


def unknown(name: str | None, email: str | None) -> Contributor:
    return Contributor(kind="unknown", name=name, email=email, sources=("author",))


def verdict(
    signed: list[Contributor] | None = None,
    exempt: list[Contributor] | None = None,
    unsigned: list[Contributor] | None = None,
    unknowns: list[Contributor] | None = None,
) -> Verdict:
    return Verdict(
        signed=signed or [], exempt=exempt or [], unsigned=unsigned or [], unknown=unknowns or []
    )


def render(v: Verdict, bot_login: str | None = "undersign[bot]") -> str:
    return comment_body(v, sign_url=SIGN_URL, agreement_title="Acme CLA", bot_login=bot_login)


def check_run(v: Verdict, **options: Any) -> dict[str, Any]:
    """The check run's body for ``v`` on a pull request of acme/widgets."""
    return check_run_body(
        v,
        name="license/cla",
        head_sha="a" * 40,
        details_url=SIGN_URL,
        external_id="acme/widgets#1",
        **options,
    )


ALICE, BOB, CAROL = account("alice", 1), account("bob", 2), account("carol", 3)


# --------------------------------------------------------------------------------------------
# Status description
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        (verdict(signed=[ALICE, BOB, CAROL]), "All 3 contributors have signed the CLA."),
        (verdict(signed=[ALICE]), "The contributor has signed the CLA."),
        (
            verdict(signed=[ALICE, BOB], unsigned=[CAROL], unknowns=[unknown("J", "j@x.io")] * 2),
            "2 of 5 contributors have signed the CLA. 2 need to link their commit email.",
        ),
        (
            verdict(signed=[ALICE], unsigned=[BOB], unknowns=[unknown("J", "j@x.io")]),
            "1 of 3 contributors have signed the CLA. 1 needs to link their commit email.",
        ),
        (verdict(unsigned=[BOB]), "0 of 1 contributor has signed the CLA."),
        (verdict(exempt=[BOB]), "No signature needed: every contributor is exempt."),
        (verdict(), "No commits to check: this pull request has no contributors."),
    ],
)
def test_status_description_examples(v: Verdict, expected: str) -> None:
    assert status_description(v) == expected


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        (
            verdict(unsigned=[BOB]),
            "0 of 1 contributor has signed the current CLA; 1 signed an earlier version and "
            "must sign the new version.",
        ),
        (
            verdict(signed=[ALICE], unsigned=[BOB, CAROL]),
            "1 of 3 contributors have signed the current CLA; 1 signed an earlier version and "
            "must sign the new version.",
        ),
        (
            verdict(signed=[ALICE], unsigned=[BOB, CAROL], unknowns=[unknown("J", "j@x.io")]),
            "1 of 4 signed the current CLA; 1 must sign the new version; 1 must link their "
            "commit email.",
        ),
        (verdict(unsigned=[CAROL]), "0 of 1 contributor has signed the CLA."),
    ],
)
def test_the_status_counts_apart_who_signed_a_replaced_version(v: Verdict, expected: str) -> None:
    """bob signed a version a material change replaced: as the comment says, he must sign
    the new version; he is not told he never signed. carol never signed."""
    assert status_description(v, people_signed_earlier=frozenset({2})) == expected


def test_report_mode_says_who_must_sign_the_new_version() -> None:
    v = verdict(unsigned=[BOB])
    assert report_description(v, people_signed_earlier=frozenset({2})) == (
        "report only: 0 of 1 have signed; 1 signed an earlier version and must sign the new version"
    )
    body = check_run(v, report_only=True, people_signed_earlier=frozenset({2}))
    assert body["output"]["title"] == report_description(v, people_signed_earlier=frozenset({2}))
    summary = body["output"]["summary"]
    assert "**The agreement has changed:** @bob signed an earlier version" in summary


def test_exempt_people_are_not_in_the_count() -> None:
    v = verdict(signed=[ALICE], exempt=[BOB], unsigned=[CAROL])
    assert status_description(v) == "1 of 2 contributors have signed the CLA."


class SizedList(list[Contributor]):
    """A list that claims any length, to test counts far beyond what fits in memory."""

    def __init__(self, item: Contributor, size: int) -> None:
        super().__init__([item] if size else [])
        self.size = size

    def __len__(self) -> int:
        return self.size


_sizes = st.one_of(st.integers(0, 12), st.integers(0, sys.maxsize))


@settings(max_examples=300, deadline=None)
@given(_sizes, _sizes, _sizes, _sizes, st.text(max_size=5000))
def test_status_description_never_exceeds_140(
    signed: int, exempt: int, unsigned: int, unknowns: int, name: str
) -> None:
    def make(name: str) -> Verdict:
        person = unknown(name or None, f"{name}@example.com")
        github = Contributor(kind="github", github_id=1, login=name or None, name=name)
        return Verdict(
            signed=SizedList(github, signed),
            exempt=SizedList(github, exempt),
            unsigned=SizedList(github, unsigned),
            unknown=SizedList(person, unknowns),
        )

    v = make(name)
    description = status_description(v)
    assert 0 < len(description) <= DESCRIPTION_LIMIT
    again = status_description(v, people_signed_earlier=frozenset({1}))
    assert 0 < len(again) <= DESCRIPTION_LIMIT
    assert 0 < len(report_description(v, people_signed_earlier=frozenset({1}))) <= 140
    assert description == status_description(make("x"))  # counts, never names
    if v.passed:
        assert v.state == "success"
    else:
        assert f"{signed} of {signed + unsigned + unknowns}" in description


# --------------------------------------------------------------------------------------------
# Comment content
# --------------------------------------------------------------------------------------------


def test_comment_lists_who_must_sign_and_who_must_link_an_email() -> None:
    v = verdict(
        signed=[CAROL],
        unsigned=[ALICE, account("dependabot[bot]", 49699333)],
        unknowns=[unknown("Jane Doe", "jane@example.com")],
    )
    body = render(v)
    assert body.startswith(COMMENT_MARKER + "\n")
    assert f"- @alice: [sign now]({SIGN_URL})" in body
    assert "- @dependabot\\[bot\\]: [sign now]" in body
    assert "@carol" not in body  # people who signed are not pinged again
    assert "**1 of 4** contributors have signed" in body
    assert "`Jane Doe` (`jane@example.com`)" in body
    assert "add `jane@example.com` to your GitHub account (Settings → Emails)" in body
    assert "or amend the commit with an email linked to your account" in body
    assert "`/cla check`" in body
    assert "**undersign\\[bot\\]**" in body


def test_only_unknown_authors_have_no_sign_list() -> None:
    body = render(verdict(signed=[ALICE], unknowns=[unknown("Jane", "jane@example.com")]))
    assert "sign now" not in body
    assert "`jane@example.com`" in body


def test_account_without_usable_login_is_described_not_mentioned() -> None:
    noreply_only = Contributor(kind="github", github_id=77)
    weird = Contributor(kind="github", github_id=78, login="a b@c")
    body = render(verdict(unsigned=[noreply_only, weird]))
    assert "the GitHub account with id 77" in body
    assert "GitHub account `a b@c`" in body


def test_thank_you_when_everyone_signed() -> None:
    body = render(verdict(signed=[ALICE, BOB], exempt=[CAROL]))
    assert body.startswith(COMMENT_MARKER)
    assert "Thank you" in body
    assert "sign now" not in body and "/cla check" not in body


def test_passed_bodies_for_empty_and_all_exempt() -> None:
    assert "no commits" in render(verdict())
    assert "No signature" in render(verdict(exempt=[ALICE]))


def test_sign_url_must_be_http_and_is_encoded() -> None:
    for bad in ("javascript:alert(1)", "data:text/html,x", "/relative/sign", ""):
        with pytest.raises(ValueError):
            comment_body(
                verdict(unsigned=[ALICE]), sign_url=bad, agreement_title="T", bot_login=None
            )
    body = comment_body(
        verdict(unsigned=[ALICE]),
        sign_url="https://cla.example.com/sign?a=(1) <b>",
        agreement_title="T",
        bot_login=None,
    )
    assert "(https://cla.example.com/sign?a=%281%29%20%3Cb%3E)" in body


def test_agreement_title_cannot_inject_markup() -> None:
    body = comment_body(
        verdict(unsigned=[ALICE]),
        sign_url=SIGN_URL,
        agreement_title="CLA](javascript:alert(1)) <b>@everyone</b>",
        bot_login=None,
    )
    assert "](javascript:" not in body
    assert "<b>" not in body
    assert "@everyone" not in body


# --------------------------------------------------------------------------------------------
# Escaping hostile commit metadata
# --------------------------------------------------------------------------------------------


def split_code_spans(markdown: str) -> tuple[str, list[str]]:
    """Replace CommonMark code spans by a placeholder; return the rest and the span contents."""
    out: list[str] = []
    spans: list[str] = []
    i = 0
    while i < len(markdown):
        if markdown[i] != "`" or (i and markdown[i - 1] == "\\"):
            out.append(markdown[i])
            i += 1
            continue
        j = i
        while j < len(markdown) and markdown[j] == "`":
            j += 1
        size, k = j - i, j
        while k < len(markdown):
            if markdown[k] != "`":
                k += 1
                continue
            m = k
            while m < len(markdown) and markdown[m] == "`":
                m += 1
            if m - k == size:
                break
            k = m
        if k >= len(markdown):  # no closing run: the backticks are literal
            out.append(markdown[i:j])
            i = j
            continue
        spans.append(markdown[j:k])
        out.append("<CODE>")
        i = k + size
    return "".join(out), spans


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "@everyone",
    "[x](javascript:alert(1))",
    "<script>alert(1)</script>",
    "evil ` ``` backticks `",
    "`starts and ends with a backtick`",
    "line\n\n# heading\n\n<details>",
    "\u202eevil bidi override @octo-org/admins",
    "octo-org/other-repo#1 and GH-2",
    "*bold* _em_ ~~strike~~ | table |",
    "<!-- undersign:cla -->",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_names_and_emails_stay_inside_code_spans(hostile: str) -> None:
    v = verdict(unknowns=[unknown(hostile, f"{hostile}@example.com")])
    benign = verdict(unknowns=[unknown("N", "e@x")])
    rest, spans = split_code_spans(render(v))
    benign_rest, _ = split_code_spans(render(benign))
    assert rest == benign_rest  # the hostile text changed nothing outside code spans
    for span in spans:
        assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in span)
    assert is_own_comment(render(v))
    assert COMMENT_MARKER not in rest.removeprefix(COMMENT_MARKER)
    for needle in ("<img", "@everyone", "](javascript:", "<script", "\u202e"):
        assert needle not in rest


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1, max_size=300), email=st.text(min_size=1, max_size=300))
def test_any_name_or_email_stays_inside_code_spans(name: str, email: str) -> None:
    rest, spans = split_code_spans(render(verdict(unknowns=[unknown(name, email)])))
    benign_rest, _ = split_code_spans(render(verdict(unknowns=[unknown("N", "e@x")])))
    assert rest == benign_rest
    # No line breaks (a blank line would end the span) and no invisible control/format
    # characters (a bidi override would visually reorder the text after the span).
    for span in spans:
        assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in span)


def test_long_names_are_truncated() -> None:
    body = render(verdict(unknowns=[unknown("x" * 10_000, "y" * 10_000 + "@example.com")]))
    assert "x" * 100 not in body
    assert len(body) < 3000


# --------------------------------------------------------------------------------------------
# Size cap
# --------------------------------------------------------------------------------------------


def _size_ok(body: str) -> bool:
    return len(body) <= COMMENT_LIMIT and len(body.encode("utf-8")) <= COMMENT_LIMIT


def test_thousands_of_unknown_authors_fit_the_comment_cap() -> None:
    people = [
        unknown("\U0001f600" * 200 + f" {i}", "\U0001f4a9" * 300 + f"{i}@example.com")
        for i in range(5000)
    ]
    body = render(verdict(unknowns=people))
    assert _size_ok(body)
    assert "more." in body
    assert body.rstrip().endswith("comment `/cla check` on this pull request.")


def test_thousands_of_unsigned_and_unknown_fit_the_comment_cap() -> None:
    unsigned = [account(f"user-{i}", i + 10) for i in range(5000)]
    unknowns = [unknown(f"Person {i}" + "x" * 90, f"p{i}@" + "d" * 300) for i in range(5000)]
    body = render(verdict(unsigned=unsigned, unknowns=unknowns))
    assert _size_ok(body)
    assert "@user-0:" in body and "`Person 0" in body  # both lists get room
    assert body.count("more.") == 2


def test_list_is_cut_after_max_listed_with_remaining_count() -> None:
    people = [account(f"user-{i}", i + 10) for i in range(MAX_LISTED + 7)]
    body = render(verdict(unsigned=people))
    assert f"@user-{MAX_LISTED - 1}:" in body
    assert f"@user-{MAX_LISTED}:" not in body
    assert "- …and 7 more." in body


# --------------------------------------------------------------------------------------------
# When to comment
# --------------------------------------------------------------------------------------------


def test_is_own_comment_needs_the_marker_first() -> None:
    assert is_own_comment(render(verdict(unsigned=[ALICE])))
    assert is_own_comment("\r\n " + COMMENT_MARKER + "\nedited by hand")
    assert not is_own_comment("Quoting the bot: " + COMMENT_MARKER)
    assert not is_own_comment(None)


@pytest.mark.parametrize(
    ("v", "existing", "needed"),
    [
        (verdict(unsigned=[ALICE]), None, True),
        (verdict(unknowns=[unknown("J", "j@x.io")]), None, True),
        (verdict(signed=[ALICE]), None, False),  # clean PR: no noise
        (verdict(), None, False),
        (verdict(signed=[ALICE]), 1234, True),  # keep the existing comment current (thank-you)
        (verdict(unsigned=[ALICE]), 1234, True),
    ],
)
def test_comment_needed(v: Verdict, existing: int | None, needed: bool) -> None:
    assert comment_needed(v, existing) is needed


# --------------------------------------------------------------------------------------------
# The opener, unlinked logins, AI agents (issue 10)
# --------------------------------------------------------------------------------------------


def test_the_comment_says_when_the_opener_is_the_one_missing() -> None:
    mallory = account("mallory", 9)
    body = render(
        Verdict(signed=[ALICE], exempt=[], unsigned=[mallory], unknown=[], opener=mallory)
    )
    assert "The account that opened this pull request has not signed" in body
    assert (
        "- @mallory: [sign now](https://cla.example.com/sign/acme) (opened this pull request)"
        in body
    )
    other = render(verdict(signed=[ALICE], unsigned=[BOB]))
    assert "opened this pull request has not signed" not in other


def test_a_login_github_did_not_link_is_text_not_a_mention() -> None:
    claimed = Contributor(kind="github", github_id=987, login="carol", sources=("co-author",))
    body = render(verdict(unsigned=[claimed]))
    assert "@carol" not in body and "GitHub account `carol` (id 987)" in body


def test_agent_verdicts_explain_themselves_within_140_characters() -> None:
    claude = Contributor(kind="unknown", email="noreply@anthropic.com", sources=("co-author",))
    copilot = Contributor(
        kind="github", github_id=198982749, login="Copilot", account_type="Bot", login_verified=True
    )
    refused = Verdict(signed=[ALICE], exempt=[], unsigned=[], unknown=[], refused=[claude])
    assert status_description(refused) == (
        "This CLA accepts no AI agent commits: 1 agent contribution found."
    )
    assert "`Claude`" in render(refused) and "`noreply@anthropic.com`" in render(refused)
    alone = Verdict(
        signed=[], exempt=[], unsigned=[], unknown=[], agents=[copilot], needs_human=True
    )
    assert len(status_description(alone)) <= DESCRIPTION_LIMIT
    assert status_description(alone).startswith("Opened by an AI agent")
    assert "An AI agent opened this pull request" in render(alone)
    helped = Verdict(signed=[], exempt=[], unsigned=[BOB], unknown=[], agents=[claude])
    assert "AI agents contributed to this pull request" in render(helped)


def test_the_check_run_explains_the_agent_policy_too() -> None:
    claude = Contributor(kind="unknown", email="noreply@anthropic.com", sources=("co-author",))
    refused = Verdict(signed=[ALICE], exempt=[], unsigned=[], unknown=[], refused=[claude])
    body = check_run_body(
        refused, name="license/cla", head_sha="a" * 40, details_url=SIGN_URL, external_id="x"
    )
    assert body["conclusion"] == "action_required"
    assert "This project accepts no code written by AI agents" in body["output"]["summary"]


def test_an_unknown_authors_line_links_to_the_emails_page_in_one_sentence() -> None:
    hostile = unknown("Mallory](https://evil.example) <b>", "m`al@corp.example")
    body = comment_body(
        verdict(unsigned=[BOB], unknowns=[unknown("Jane", "jane@corp.example"), hostile]),
        sign_url=SIGN_URL,
        agreement_title="Acme CLA",
        bot_login=None,
        emails_url="https://cla.example.com/me/emails",
    )
    line = next(x for x in body.splitlines() if "jane@corp.example" in x)
    assert line == (
        "- `Jane` (`jane@corp.example`): if this address is yours, verify it on your GitHub "
        "account, then [link it to undersign](https://cla.example.com/me/emails) and sign."
    )
    # Attacker-written name and address stay inside code spans, before the one real link.
    assert "- `Mallory](https://evil.example) <b>` (``m`al@corp.example``): if" in body
    assert body.count("(https://cla.example.com/me/emails)") == 2
    with pytest.raises(ValueError):
        comment_body(
            verdict(unknowns=[hostile]),
            sign_url=SIGN_URL,
            agreement_title="Acme CLA",
            bot_login=None,
            emails_url="javascript:alert(1)",
        )


@pytest.mark.parametrize("report_only", [False, True])
def test_the_check_run_tells_unknown_authors_where_to_prove_their_email(report_only: bool) -> None:
    """In App mode the check run is what authors read: it gives the comment's guidance."""
    emails = "https://cla.example.com/me/emails"
    v = verdict(unsigned=[BOB], unknowns=[unknown("Jane", "jane@corp.example")])

    def summary_of(corporate: bool) -> str:
        body = check_run(v, report_only=report_only, emails_url=emails, corporate=corporate)
        return str(body["output"]["summary"])

    summary = summary_of(corporate=True)
    comment = comment_body(
        v,
        sign_url=SIGN_URL,
        agreement_title="Acme CLA",
        bot_login=None,
        emails_url=emails,
        corporate=True,
    )
    line = next(x for x in summary.splitlines() if "jane@corp.example" in x)
    assert line in comment.splitlines()
    assert f"[link it to undersign]({emails})" in line
    assert f"[prove your work email address]({emails})" in summary
    # Without a corporate agreement, nothing is said about companies.
    plain = summary_of(corporate=False)
    assert "CLA manager" not in plain and f"[link it to undersign]({emails})" in plain


def test_who_a_company_awaiting_review_would_cover_is_named_within_the_cap() -> None:
    people = [account(f"user{n}", 100 + n) for n in range(3000)]
    body = comment_body(
        verdict(unsigned=people, unknowns=[unknown("J", f"j{n}@x.io") for n in range(3000)]),
        sign_url=SIGN_URL,
        agreement_title="Acme CLA",
        bot_login="undersign[bot]",
        corporate=True,
        awaiting_review=frozenset(range(100, 112)),
    )
    assert len(body) <= COMMENT_LIMIT
    [paragraph] = [p for p in body.split("\n\n") if p.startswith("**Awaiting review:**")]
    assert "@user0" in paragraph and "@user9," in paragraph and "@user10" not in paragraph
    assert "\u2026" in paragraph and "until they accept it" in paragraph
    plain = comment_body(
        verdict(unsigned=[ALICE]),
        sign_url=SIGN_URL,
        agreement_title="Acme CLA",
        bot_login=None,
        corporate=True,
        awaiting_review=frozenset({BOB.github_id or 0}),
    )
    assert "Awaiting review" not in plain  # only for the people still unsigned


def test_people_who_signed_a_replaced_version_are_told_the_agreement_changed() -> None:
    """bob opened the pull request and signed a version a material change replaced; carol
    never signed: the comment does not say bob never signed, and names only him."""
    v = Verdict(signed=[], exempt=[], unsigned=[BOB, CAROL], unknown=[], opener=BOB)
    body = comment_body(
        v,
        sign_url=SIGN_URL,
        agreement_title="Acme CLA",
        bot_login="undersign[bot]",
        people_signed_earlier=frozenset({BOB.github_id or 0}),
    )
    assert "opened this pull request has not signed the current version." in body
    assert "**The agreement has changed:** @bob signed an earlier version" in body
    assert "@carol signed" not in body
    plain = render(v)
    assert "opened this pull request has not signed.**" in plain
    assert "The agreement has changed" not in plain
