"""A ready-made GitHub for the demo and for end-to-end tests.

bob opens acme/widgets#1 with commits he authored.  Nobody has signed anything: signing is
undersign's business, so the demo starts red and turns green once bob signs.
"""

from __future__ import annotations

from undersign.emulator.state import GitHubEmulator

DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("alice", "Alice Liddell", "alice@example.com"),
    ("bob", "Bob Builder", "bob@example.com"),
    ("carol", "Carol Danvers", "carol@example.com"),
    ("dave", "Dave Lister", "dave@example.com"),
)


def build_demo_state(
    client_id: str = "Iv1.demo0000000000",
    client_secret: str = "demo-client-secret",  # noqa: S107 - a demo value, not a secret
    callback_url: str | list[str] = "http://127.0.0.1:5000/auth/callback",
    *,
    wildcard: bool = True,
    bot_login: str = "undersign-bot",
) -> GitHubEmulator:
    """alice/bob/carol/dave, ``dependabot[bot]``, org ``acme`` (alice admin, carol member)
    with ``acme/widgets`` and open PR #1 by bob, plus the OAuth app undersign signs in with.

    ``bot_login`` is the machine account whose token undersign posts statuses and comments
    with (``state.issue_token(bot_login)``); it has write access to ``acme/widgets``.
    """
    st = GitHubEmulator()
    for login, name, email in DEMO_USERS:
        st.add_user(login, name=name, email=email)
    st.add_user("dependabot[bot]", type="Bot")
    st.add_user(bot_login, name="undersign", email="bot@undersign.invalid")
    st.add_org("acme", admins=["alice"], members=["carol"], public_members=["alice"])
    st.add_repo("acme/widgets", description="Widgets, contributed under a CLA")
    st.add_collaborator("acme/widgets", "dave", "write")
    st.add_collaborator("acme/widgets", bot_login, "write")
    st.add_pull_request(
        "acme/widgets",
        user_login="bob",
        n_commits=2,
        head_ref="bob/faster-widgets",
        title="Make widgets faster",
        body="This speeds up widget assembly.",
    )
    st.add_oauth_client(client_id, client_secret, callback_url, wildcard=wildcard)
    return st
