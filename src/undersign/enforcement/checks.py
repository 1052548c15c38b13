"""GitHub App mode: the verdict as a check run (the app-only webhooks are in app_events.py).

Branch protection can require "this app's check" specifically, which a commit status cannot
offer (any token with ``statuses: write`` may post ``license/cla``). The check run carries the
same name as the status context, links to the sign page, lists who must sign, and offers a
"Re-check" button (``requested_action`` with identifier ``recheck``); GitHub's own "Re-run"
sends ``check_run.rerequested``. Both re-evaluate the pull request. The status stays too.

One check run per head commit: created on the first verdict for a head, then updated in place
(PATCH) while the head stays, and not touched at all when what it would say is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy import select

from undersign.enforcement.models import PullRequestCheck
from undersign.enforcement.policy import Verdict
from undersign.enforcement.report import (
    agent_paragraphs,
    corporate_paragraph,
    mention,
    people_signed_earlier_paragraph,
    report_description,
    status_description,
    unknown_line,
)
from undersign.github.app import AppGitHubClient
from undersign.github.errors import NotFound
from undersign.jobs.context import JobContext

log = logging.getLogger(__name__)

RECHECK = "recheck"
RECHECK_ACTION = {
    "label": "Re-check",  # GitHub: label <= 20, description <= 40, identifier <= 20
    "description": "Check the CLA signatures again",
    "identifier": RECHECK,
}
MAX_SUMMARY = 60000  # GitHub's cap is 65535 characters


def check_run_body(
    verdict: Verdict | None,
    *,
    name: str,
    head_sha: str,
    details_url: str,
    external_id: str,
    error: str | None = None,
    report_only: bool = False,
    emails_url: str | None = None,
    corporate: bool = False,
    people_signed_earlier: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    """What the check run says for a verdict (or an error when there is none).

    ``report_only`` (a link in report mode): the conclusion is ``neutral``, which never
    blocks a merge, and the summary still lists who has not signed. ``emails_url`` and
    ``corporate`` as for the pull request comment (``report.comment_body``): an author whose
    commit email is not linked is told where to prove it, and with a corporate agreement the
    unsigned are told their company may cover them. ``people_signed_earlier`` too: who
    signed a version a material change replaced reads that they must sign the new one (in
    the title, which is the status description, and in the summary). In App mode the check
    run is what authors read first, so it gives the comment's guidance."""
    earlier = {"people_signed_earlier": people_signed_earlier}
    if verdict is None:
        conclusion, title = "failure", (error or "undersign could not check the CLA")[:140]
        summary = f"{title}\n\nComment `/cla check` or press **Re-check** to try again."
    elif report_only:
        conclusion, title = "neutral", report_description(verdict, **earlier)
        lines = ["Report only: this repository does not require the CLA yet.", ""]
        if verdict.unsigned or verdict.unknown:
            lines += ["These contributors have not signed the CLA:", ""]
            lines += [f"- {mention(c)}" for c in verdict.unsigned]
            lines += [unknown_line(c, emails_url) for c in verdict.unknown]
            lines += _signed_earlier_lines(verdict, people_signed_earlier)
            lines += _corporate_lines(verdict, emails_url, corporate)
            lines += ["", f"Sign here: {details_url}"]
        else:
            lines.append("Every contributor has signed the CLA (or needs not to).")
        summary = "\n".join(lines)
        if len(summary) > MAX_SUMMARY:
            summary = summary[: MAX_SUMMARY - 20] + "\n\n(list truncated)"
    elif verdict.passed:
        conclusion, title = "success", status_description(verdict, **earlier)
        summary = "Every contributor has signed the CLA (or needs not to)."
    else:
        # action_required blocks a required check, like failure, and GitHub shows a button
        # to details_url: the sign page.
        conclusion, title = "action_required", status_description(verdict, **earlier)
        lines = ["These contributors must sign the CLA before this can be merged:", ""]
        lines += [f"- {mention(c)}" for c in verdict.unsigned]
        lines += [unknown_line(c, emails_url) for c in verdict.unknown]
        lines += _signed_earlier_lines(verdict, people_signed_earlier)
        lines += _corporate_lines(verdict, emails_url, corporate)
        for paragraph in agent_paragraphs(verdict):  # the agreement's AI agent policy
            lines += ["", paragraph]
        lines += ["", f"Sign here: {details_url}"]
        summary = "\n".join(lines)
        if len(summary) > MAX_SUMMARY:
            summary = summary[: MAX_SUMMARY - 20] + "\n\n(list truncated)"
    body: dict[str, Any] = {
        "name": name,
        "head_sha": head_sha,
        "details_url": details_url,
        "external_id": external_id,
        "status": "completed",
        "conclusion": conclusion,
        "output": {"title": title, "summary": summary},
        "actions": [] if conclusion == "success" else [RECHECK_ACTION],
    }
    return body


def _signed_earlier_lines(verdict: Verdict, people_signed_earlier: frozenset[int]) -> list[str]:
    """The comment's note on the unsigned who signed a version a material change replaced."""
    again = [c for c in verdict.unsigned if c.github_id in people_signed_earlier]
    return ["", people_signed_earlier_paragraph(again)] if again else []


def _corporate_lines(verdict: Verdict, emails_url: str | None, corporate: bool) -> list[str]:
    """The comment's second way out for the unsigned, when companies can sign here."""
    if not (corporate and verdict.unsigned):
        return []
    return ["", corporate_paragraph(emails_url)]


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def publish_check_run(
    ctx: JobContext,
    repo_full_name: str,
    number: int,
    head_sha: str,
    verdict: Verdict | None,
    details_url: str,
    *,
    error: str | None = None,
    report_only: bool = False,
    emails_url: str | None = None,
    corporate: bool = False,
    people_signed_earlier: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    """Create or update the pull request's check run on ``head_sha``; returns the columns of
    ``pull_request_checks`` to store. Token mode: nothing at all (GitHub would answer 403).
    ``report_only``: a link in report mode (the check concludes neutral); ``emails_url``,
    ``corporate`` and ``people_signed_earlier``: see `check_run_body`."""
    if not ctx.settings.app_mode:
        return {}
    gh = ctx.github
    if not isinstance(gh, AppGitHubClient):
        return {}
    name = repo_full_name.strip().lower()
    owner, repo = name.split("/", 1)
    with ctx.database.session() as session:
        row = session.scalar(
            select(PullRequestCheck).where(
                PullRequestCheck.repo_full_name == name, PullRequestCheck.number == number
            )
        )
        stored = (row.check_run_id, row.check_run_sha, row.check_run_sha256) if row else (None,) * 3
    body = check_run_body(
        verdict,
        name=ctx.settings.status_context,
        head_sha=head_sha,
        details_url=details_url,
        external_id=f"{name}#{number}",
        error=error,
        report_only=report_only,
        emails_url=emails_url,
        corporate=corporate,
        people_signed_earlier=people_signed_earlier,
    )
    digest = _digest(body)
    run_id, run_sha, run_digest = stored
    if run_id is not None and run_sha == head_sha:
        if run_digest == digest:
            return {}
        update = {k: v for k, v in body.items() if k != "head_sha"}
        try:
            gh.update_check_run(owner, repo, int(run_id), update)
            return {"check_run_sha256": digest}
        except NotFound:
            pass  # deleted with its suite: create a new one
    created = gh.create_check_run(owner, repo, body)
    return {
        "check_run_id": int(created["id"]),
        "check_run_sha": head_sha,
        "check_run_sha256": digest,
    }


def publish_merge_group_check(
    ctx: JobContext, repo_full_name: str, head_sha: str, state: str, title: str, url: str
) -> None:
    """A merge group's head is new each time: one check run, created once."""
    gh = ctx.github
    if not isinstance(gh, AppGitHubClient):
        return
    owner, repo = repo_full_name.split("/", 1)
    gh.create_check_run(
        owner,
        repo,
        {
            "name": ctx.settings.status_context,
            "head_sha": head_sha,
            "details_url": url,
            "status": "completed",
            "conclusion": "success" if state == "success" else "failure",
            "output": {"title": title[:140], "summary": title},
        },
    )
