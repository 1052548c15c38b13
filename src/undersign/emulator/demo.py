"""A ready-made GitHub for the demo and for end-to-end tests.

bob opens acme/widgets#1 with commits he authored.  Nobody has signed anything: signing is
undersign's business, so the demo starts red and turns green once bob signs.

Two more pull requests show the AI agent policy (docs/agents.md), both ways:

* acme/gadgets#1 is opened by the Copilot coding agent (account ``Copilot``, id 198982749)
  for carol: its commit is Copilot's with carol as co-author, and carol pushed a fix. Under
  ``require-human`` the agent needs no signature and carol does: red until carol signs.
* acme/handmade#1, by alice, carries ``Co-authored-by: Claude <noreply@anthropic.com>``; the
  agreement covering acme/handmade refuses agent-written code, so it stays red whatever
  alice signs.

acme/widgets#2 shows proven email addresses (issue 14): dave opens it with a commit
authored with his work address ``WORK_ADDRESS``, which GitHub verified on his account but
did not link to the commit (``author: null``). It stays red until dave signs *and* proves
the address on undersign's ``/me/emails``.

acme/widgets#3 shows corporate agreements: erin works at BigCorp, which signed the
corporate CLA on paper with frank as its CLA manager. Her commit carries her work address
``CORPORATE_ADDRESS`` (verified on GitHub, not linked to the commit). It stays red until
frank approves the ``bigcorp.example`` domain at ``/companies`` *and* erin proves the
address on ``/me/emails``: a domain covers nobody through an address nobody proved.
"""

from __future__ import annotations

from undersign.emulator.state import GitHubEmulator

COPILOT_ID = 198982749  # the Copilot coding agent's account (enforcement/agents.py)
AGENT_REPO = "acme/gadgets"  # covered by the org's agreement: agents require a human
NO_AGENTS_REPO = "acme/handmade"  # its own agreement refuses agent-written code
WORK_ADDRESS = "dave.lister@reddwarf.example"  # dave's work address, verified on GitHub
CORPORATE_DOMAIN = "bigcorp.example"
CORPORATE_ADDRESS = f"erin@{CORPORATE_DOMAIN}"  # erin's address at BigCorp, verified on GitHub
#: BigCorp's employee and its CLA manager.
CORPORATE_USERS: tuple[tuple[str, str, str], ...] = (
    ("erin", "Erin Example", "erin@example.com"),
    ("frank", "Frank Manager", "frank@example.com"),
)

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
    """alice/bob/carol/dave, ``dependabot[bot]``, org ``acme`` (alice owner, carol member)
    with ``acme/widgets`` and open PR #1 by bob, plus the OAuth app undersign signs in with.

    ``bot_login`` is the machine account whose token undersign posts statuses and comments
    with (``state.issue_token(bot_login)``); it has write access to ``acme/widgets``.
    """
    st = GitHubEmulator()
    for login, name, email in DEMO_USERS:
        st.add_user(login, name=name, email=email)
    st.add_user("dependabot[bot]", type="Bot", user_id=49699333)
    st.add_user("Copilot", type="Bot", user_id=COPILOT_ID)
    st.add_user(bot_login, name="undersign", email="bot@undersign.invalid")
    # The bot is a member so it may read memberships: the console asks GitHub who owns acme
    # (alice, the demo's maintainer).
    st.add_org("acme", admins=["alice"], members=["carol", bot_login], public_members=["alice"])
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
    _work_address_pull_request(st)
    _corporate_pull_request(st)
    _agent_pull_requests(st, bot_login)
    st.add_oauth_client(client_id, client_secret, callback_url, wildcard=wildcard)
    return st


def _work_address_pull_request(st: GitHubEmulator) -> None:
    st.add_email("dave", WORK_ADDRESS, verified=True)
    st.add_email("dave", "dave@old-job.example", verified=False)  # listed, proves nothing
    work = st.add_commit(
        "acme/widgets",
        author={"name": "Dave Lister", "email": WORK_ADDRESS},
        author_field="null",  # GitHub did not link this commit to an account
        message="Polish the widget casing",
    )
    st.add_pull_request(
        "acme/widgets",
        user_login="dave",
        commits=[work],
        head_ref="dave/polish",
        title="Polish the widget casing",
        body="Written at work, with my work address.",
    )


def _corporate_pull_request(st: GitHubEmulator) -> None:
    for login, name, email in CORPORATE_USERS:
        st.add_user(login, name=name, email=email)
    st.add_email("erin", CORPORATE_ADDRESS, verified=True)
    work = st.add_commit(
        "acme/widgets",
        author={"name": "Erin Example", "email": CORPORATE_ADDRESS},
        author_field="null",
        message="Document the widget sizes",
    )
    st.add_pull_request(
        "acme/widgets",
        user_login="erin",
        commits=[work],
        head_ref="erin/sizes",
        title="Document the widget sizes",
        body="From BigCorp, which signed the corporate CLA.",
    )


def _agent_pull_requests(st: GitHubEmulator, bot_login: str) -> None:
    for repo, description in (
        (AGENT_REPO, "Gadgets: AI agents welcome, a person answers for their work"),
        (NO_AGENTS_REPO, "Handmade: no AI-written code accepted"),
    ):
        st.add_repo(repo, description=description)
        st.add_collaborator(repo, bot_login, "write")
    agent_commit = st.add_commit(
        AGENT_REPO,
        author_login="Copilot",
        message=("Sort gadgets by size\n\nCo-authored-by: Carol Danvers <carol@example.com>\n"),
    )
    fix = st.add_commit(AGENT_REPO, author_login="carol", message="Review fixes")
    st.add_pull_request(
        AGENT_REPO,
        user_login="Copilot",
        commits=[agent_commit, fix],
        head_ref="copilot/sort-gadgets",
        title="Sort gadgets by size",
        body="Copilot, asked by carol.",
    )
    assisted = st.add_commit(
        NO_AGENTS_REPO,
        author_login="alice",
        message="Carve the spoon\n\nCo-authored-by: Claude <noreply@anthropic.com>\n",
    )
    st.add_pull_request(
        NO_AGENTS_REPO,
        user_login="alice",
        commits=[assisted],
        head_ref="alice/spoon",
        title="Carve the spoon",
        body="Written with an AI assistant.",
    )
