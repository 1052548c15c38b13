"""A linked repository renamed or transferred on GitHub keeps its agreement: undersign follows
the ``repository`` ``renamed`` / ``transferred`` delivery, once GitHub confirms the new name."""

from __future__ import annotations

from sqlalchemy import select
from tests.conftest import AGREEMENT_SLUG, BOT_LOGIN, CLAService

from undersign.agreements.models import AuditEntry, OrgLink, RepoLink
from undersign.agreements.service import AgreementService
from undersign.enforcement.models import PullRequestCheck

OLD = "solo/tool"


def _linked_repo(cla: CLAService) -> None:
    """``solo/tool``: a user's repository covered by a repository link (no org link)."""
    state = cla.state
    state.add_user("solo", name="Solo", email="solo@example.com")
    state.add_repo(OLD)
    state.add_collaborator(OLD, BOT_LOGIN, "write")
    with cla.database.session() as session:
        AgreementService(session).link_repo(OLD, AGREEMENT_SLUG)


def _links(cla: CLAService) -> list[str]:
    with cla.database.session() as session:
        return sorted(session.scalars(select(RepoLink.full_name)))


def _head(cla: CLAService, repo: str, number: int) -> str:
    return str(cla.state.pull_request(repo, number)["head"]["sha"])


def _checked_under_the_new_name(cla: CLAService, new: str, earlier: int) -> None:
    """A pull request bob opens under ``new`` is red; his signature turns it green, and the
    pull request ``earlier`` (known from before the move) with it."""
    after = cla.state.add_pull_request(new, user_login="bob", n_commits=1)
    cla.deliver("pull_request", cla.state.pull_request_event(new, after["number"]))
    cla.wait_idle()
    assert cla.status_state(new, _head(cla, new, after["number"])) == "failure"
    cla.sign("bob")
    cla.wait_idle()
    for number in (earlier, after["number"]):
        assert cla.status_state(new, _head(cla, new, number)) == "success"


def test_a_renamed_repositorys_new_pull_requests_are_still_checked(cla: CLAService) -> None:
    _linked_repo(cla)
    before = cla.state.add_pull_request(OLD, user_login="bob", n_commits=1)
    cla.deliver("pull_request", cla.state.pull_request_event(OLD, before["number"]))
    cla.wait_idle()
    assert cla.status_state(OLD, _head(cla, OLD, before["number"])) == "failure"

    changes = cla.state.rename_repo(OLD, "gadget")
    new = "solo/gadget"
    assert cla.deliver("repository", cla.state.repository_event(new, "renamed", changes))[0] == 202
    cla.wait_idle()
    assert _links(cla) == [new]
    with cla.database.session() as session:
        names = set(session.scalars(select(PullRequestCheck.repo_full_name)))
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "repo.move"))
    assert names == {new}
    assert entry.before is not None and entry.after is not None
    assert (entry.actor, entry.before["repo"], entry.after["repo"]) == ("github", OLD, new)

    # A pull request opened under the new name gets its verdict, as before the rename.
    _checked_under_the_new_name(cla, new, before["number"])


def test_pull_requests_opened_before_the_delivery_arrives_are_evaluated(cla: CLAService) -> None:
    """Deliveries can arrive late: the pull requests the new name already has are checked
    once the link has followed, with no event of their own."""
    _linked_repo(cla)
    changes = cla.state.rename_repo(OLD, "gadget")
    new = "solo/gadget"
    early = cla.state.add_pull_request(new, user_login="bob", n_commits=1)
    cla.deliver("pull_request", cla.state.pull_request_event(new, early["number"]))
    cla.wait_idle()
    assert cla.status(new, _head(cla, new, early["number"])) is None  # not covered yet
    cla.deliver("repository", cla.state.repository_event(new, "renamed", changes))
    cla.wait_idle()
    assert cla.status_state(new, _head(cla, new, early["number"])) == "failure"


def test_a_transferred_repositorys_link_follows_it(cla: CLAService) -> None:
    _linked_repo(cla)
    cla.state.add_org("newco", admins=["solo"])
    changes = cla.state.transfer_repo(OLD, "newco")
    new = "newco/tool"
    cla.deliver("repository", cla.state.repository_event(new, "transferred", changes))
    cla.wait_idle()
    assert _links(cla) == [new]
    pr = cla.state.add_pull_request(new, user_login="bob", n_commits=1)
    cla.deliver("pull_request", cla.state.pull_request_event(new, pr["number"]))
    cla.wait_idle()
    assert cla.status_state(new, _head(cla, new, pr["number"])) == "failure"


def test_a_stale_rename_delivery_moves_nothing(cla: CLAService) -> None:
    """Renamed, then renamed back: the first delivery, replayed, names a repository GitHub
    no longer calls by that name. The payload is a trigger, not the truth."""
    _linked_repo(cla)
    first = cla.state.rename_repo(OLD, "gadget")
    stale = cla.state.repository_event("solo/gadget", "renamed", first)
    cla.state.rename_repo("solo/gadget", "tool")
    cla.deliver("repository", stale)
    cla.wait_idle()
    assert _links(cla) == [OLD]
    with cla.database.session() as session:
        assert not list(session.scalars(select(AuditEntry).where(AuditEntry.action == "repo.move")))


def test_a_link_made_for_the_new_name_wins(cla: CLAService) -> None:
    _linked_repo(cla)
    changes = cla.state.rename_repo(OLD, "gadget")
    with cla.database.session() as session:
        AgreementService(session).link_repo("solo/gadget", AGREEMENT_SLUG, mode="report")
    cla.deliver("repository", cla.state.repository_event("solo/gadget", "renamed", changes))
    cla.wait_idle()
    assert [job.status for job in cla.jobs()] == ["done"]
    with cla.database.session() as session:
        modes = dict(session.execute(select(RepoLink.full_name, RepoLink.mode)).all())
    assert modes == {OLD: "enforce", "solo/gadget": "report"}


def test_a_renamed_organisation_keeps_its_agreement(cla: CLAService) -> None:
    """``organization`` ``renamed`` (an organisation's webhook): the org link, the links of its
    repositories and the pull requests undersign keeps go by the new login."""
    repo = "octo-org/widgets"
    with cla.database.session() as session:
        AgreementService(session).link_repo("octo-org/gadgets", AGREEMENT_SLUG, mode="report")
    before = cla.state.add_pull_request(repo, user_login="bob", n_commits=1)
    cla.deliver("pull_request", cla.state.pull_request_event(repo, before["number"]))
    cla.wait_idle()
    changes = cla.state.rename_user("octo-org", "octo-labs")
    payload = cla.state.organization_event("octo-labs", "renamed", changes, sender_login="maint")
    assert cla.deliver("organization", payload)[0] == 202
    cla.wait_idle()
    assert [job.status for job in cla.jobs()] == ["done"] * len(cla.jobs())
    with cla.database.session() as session:
        orgs = list(session.scalars(select(OrgLink.org)))
        names = set(session.scalars(select(PullRequestCheck.repo_full_name)))
    assert (orgs, _links(cla), names) == (
        ["octo-labs"],
        ["octo-labs/gadgets"],
        {"octo-labs/widgets"},
    )

    _checked_under_the_new_name(cla, "octo-labs/widgets", before["number"])


def test_a_stale_organisation_rename_moves_nothing(cla: CLAService) -> None:
    first = cla.state.rename_user("octo-org", "octo-labs")
    stale = cla.state.organization_event("octo-labs", "renamed", first, sender_login="maint")
    cla.state.rename_user("octo-labs", "octo-org")
    cla.deliver("organization", stale)
    cla.wait_idle()
    with cla.database.session() as session:
        assert list(session.scalars(select(OrgLink.org))) == ["octo-org"]
