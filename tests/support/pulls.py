"""Pull requests on the GitHub emulator as the enforcement tests drive them: opened, their
webhook delivered, their head and the bot's comments read back, their status awaited.

Depends on ``tests/conftest.py``'s ``CLAService`` (the live app, its workers, the emulator)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.conftest import BOT_LOGIN

from undersign.enforcement.service import noreply_domain

if TYPE_CHECKING:
    from tests.conftest import CLAService

#: The repository the ``cla`` fixture links to its agreement.
REPO = "octo-org/widgets"


def open_pr(
    cla: CLAService, login: str, n_commits: int = 1, repo: str = REPO, **kw: Any
) -> dict[str, Any]:
    """A pull request by ``login`` on the emulator (no webhook yet: see ``deliver_pr``)."""
    pr: dict[str, Any] = cla.state.add_pull_request(
        repo, user_login=login, n_commits=n_commits, **kw
    )
    return pr


def deliver_pr(
    cla: CLAService, pr: dict[str, Any], action: str = "opened", repo: str = REPO
) -> str:
    """Deliver ``pr``'s ``pull_request`` webhook to the app; its delivery id."""
    payload = cla.state.pull_request_event(repo, pr["number"], action)
    status, guid = cla.deliver("pull_request", payload)
    assert status == 202
    return guid


def head(cla: CLAService, pr: dict[str, Any], repo: str = REPO) -> str:
    """The sha of ``pr``'s head as the emulator holds it now."""
    return str(cla.state.pull_request(repo, pr["number"])["head"]["sha"])


def our_comments(cla: CLAService, pr: dict[str, Any], repo: str = REPO) -> list[dict[str, Any]]:
    """The bot's comments on ``pr``."""
    return [c for c in cla.state.comments(repo, pr["number"]) if c["user"]["login"] == BOT_LOGIN]


def noreply(cla: CLAService, login: str) -> str:
    """``login``'s GitHub noreply address on the emulator."""
    user = cla.state.user(login)
    return f"{user['id']}+{login}@{noreply_domain(cla.settings.github_url)}"


def evaluate_now(cla: CLAService, pr: dict[str, Any], repo: str = REPO) -> dict[str, Any]:
    """Deliver a ``synchronize`` of ``pr``, wait for the workers: the status they posted."""
    deliver_pr(cla, pr, "synchronize", repo)
    cla.wait_idle()
    status = cla.status(repo, head(cla, pr, repo))
    assert status is not None
    return status


def pr_authored_as(
    cla: CLAService, opener: str, email: str, *, linked: bool = False
) -> tuple[int, str]:
    """A pull request by ``opener`` with one commit authored as ``email``, delivered; GitHub
    links the commit to an account only when ``linked``. Its number and head."""
    sha = cla.state.add_commit(
        REPO,
        author={"name": "Someone", "email": email},
        author_login=opener if linked else None,
        author_field="user" if linked else "null",
        message="Fix the widget",
    )
    pr: dict[str, Any] = cla.state.add_pull_request(REPO, user_login=opener, commits=[sha])
    status, _ = cla.deliver("pull_request", cla.state.pull_request_event(REPO, pr["number"]))
    assert status == 202
    return int(pr["number"]), head(cla, pr)


def settles_on(cla: CLAService, sha: str, expected: str) -> None:
    """Wait for ``sha``'s status to be ``expected`` and the workers to be idle; it stays so."""
    cla.wait_for(lambda: cla.status_state(REPO, sha) == expected, what=expected)
    cla.wait_idle()
    assert cla.status_state(REPO, sha) == expected
