"""One runtime: the queue (with every handler), the bot's context, and the hooks.

``build_runtime(settings, database)`` is how the web app factory, ``undersign worker``,
``undersign serve``'s worker process, the maintainers' commands, ``undersign demo`` and the
tests all get their queue: each runtime owns its own (no process-wide cache), and closes it.

What it wires, once:

* the queue's ``JobHandlers``: enforcement's job kinds (``enforcement.tasks``), the
  reconciler as a periodic task (when ``UNDERSIGN_RECONCILE_INTERVAL`` > 0), and expired web
  sessions for the periodic purge;
* the hooks that make undersign look at pull requests again without a webhook: someone
  signed or revoked (``signature_hook``), a proven email address changed owner
  (``email_hook``), a policy changed (``requeue_open_pull_requests``);
* the domain gauges ``/metrics`` reports (queue depth, active signatures), so that
  observability knows no domain table;
* the GitHub credentials of an app registered from the setup page while the process runs
  (``refresh_credentials``): the settings, the queue and its job context take them up
  without a restart.

Depends on config, db, auth.models, agreements (models, imports), enforcement (tasks, triggers,
reconcile), github.registration, jobs, observability.metrics.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from undersign.agreements.companies import ApprovalChange
from undersign.agreements.imports import NotAPerson
from undersign.agreements.models import Agreement, AgreementVersion, Signature
from undersign.auth.models import WebSession
from undersign.config import Settings
from undersign.db import Database
from undersign.enforcement import reconcile, tasks, triggers
from undersign.github.registration import RegistrationWatch
from undersign.jobs.context import JobContext
from undersign.jobs.handlers import Expiry, JobHandlers
from undersign.jobs.models import Job
from undersign.jobs.queue import JobQueue
from undersign.observability import metrics

#: ``Runtime.extras`` key: a callable replacing the signature hook (tests that only want to
#: see it called), as ``hook(github_id, "signed" | "revoked")``.
SIGNATURE_HOOK = "on_signature_change"
#: The jobs ``/metrics`` counts as the queue's depth.
QUEUE_STATUSES = ("queued", "running", "failed")

SignatureHook = Callable[[int, str], None]
#: After an import, above this many people one re-evaluation of every open pull request the
#: agreement covers is cheaper than one job per person.
PER_PERSON_LIMIT = 200


def _stale_sessions(settings: Settings, now: dt.datetime) -> ColumnElement[bool]:
    """Web sessions past their lifetime or their idle timeout."""
    idle = dt.timedelta(seconds=settings.session_idle_timeout)
    return or_(WebSession.expires_at < now, WebSession.last_seen_at < now - idle)


WEB_SESSIONS = Expiry("expired session(s)", WebSession.id_hash, _stale_sessions)


def job_handlers(settings: Settings) -> JobHandlers:
    """Everything the queue runs, for these settings."""
    handlers = JobHandlers()
    tasks.register(handlers)
    handlers.expiries.append(WEB_SESSIONS)
    if settings.reconcile_interval > 0:
        handlers.periodic.append(reconcile.periodic(settings.reconcile_interval))
    return handlers


def _queue_gauge(session: Session) -> Iterator[Metric]:
    by_status = dict(
        session.execute(
            select(Job.status, func.count())
            .where(Job.status.in_(QUEUE_STATUSES))
            .group_by(Job.status)
        ).all()
    )
    queue = GaugeMetricFamily(
        "undersign_queue_jobs",
        "Jobs in the jobs table by status (queued and running: the queue depth)",
        labels=["status"],
    )
    for status in QUEUE_STATUSES:
        queue.add_metric([status], float(by_status.get(status, 0)))
    yield queue


def _signatures_gauge(session: Session) -> Iterator[Metric]:
    signatures = session.execute(
        select(Agreement.slug, func.count(Signature.id))
        .join(AgreementVersion, AgreementVersion.agreement_id == Agreement.id)
        .join(Signature, Signature.version_id == AgreementVersion.id)
        .where(Signature.revoked_at.is_(None))
        .group_by(Agreement.slug)
    ).all()
    signed = GaugeMetricFamily(
        "undersign_signatures_active",
        "Signatures not revoked, by agreement",
        labels=["agreement"],
    )
    for slug, count in sorted((str(s), int(c)) for s, c in signatures):
        signed.add_metric([slug], float(count))
    yield signed


#: The domain gauges, computed from the database at scrape time.
GAUGES: tuple[metrics.GaugeSource, ...] = (_queue_gauge, _signatures_gauge)


@dataclass
class Runtime:
    """The settings, the database, the queue, and what hangs off them."""

    settings: Settings
    database: Database
    handlers: JobHandlers
    #: Replacements a caller asked for (``SIGNATURE_HOOK``), by key.
    extras: dict[str, Any] = field(default_factory=dict)
    owns_database: bool = False
    #: Follows the app registered from the setup page (None: the settings never change).
    registration: RegistrationWatch | None = None
    _queue: JobQueue | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def queue(self) -> JobQueue:
        """This runtime's queue, made on first use (a web process that never takes a
        webhook never opens it)."""
        with self._lock:
            if self._queue is None:
                self._queue = JobQueue(
                    self.settings, self.database, self.handlers, refresh=self.refresh_credentials
                )
            return self._queue

    @property
    def configured(self) -> Settings:
        """The settings as the environment gives them, without a registered app's."""
        return self.settings if self.registration is None else self.registration.configured

    def refresh_credentials(self, *, now: bool = False) -> bool:
        """Take up an app registered (or registered again) from the setup page since the
        registration was last read, which happens at most every few seconds
        (``RegistrationWatch``; at once with ``now``). Called where the GitHub credentials are
        about to be used: before every job, at sign-in, for a webhook whose signature did not
        match; never on every request. True when the settings changed: ``settings``, the
        queue's and its job context's (a new GitHub client, app and pacer on next use)."""
        watch = self.registration
        if watch is None or not watch.check(now=now):
            return False
        with self._lock:  # the latest settings win, whichever thread read them
            self.settings = watch.settings
            if self._queue is not None:
                self._queue.adopt(self.settings)
        return True

    @property
    def bot(self) -> JobContext:
        """What jobs and direct evaluations run with (the GitHub client, the pacer)."""
        return self.queue.context()

    def signature_hook(self, session: Session) -> SignatureHook:
        """The ``SignatureService(session, on_change=...)`` callback: someone signed or
        revoked, so their waiting pull requests are evaluated again (the job commits with
        the change, and reaches the queue after that commit)."""
        replacement: SignatureHook | None = self.extras.get(SIGNATURE_HOOK)
        if replacement is not None:
            return replacement
        return triggers.on_signature_change(self.queue, session)

    def email_hook(self, session: Session) -> Callable[[Sequence[str]], None]:
        """The ``ProvenEmailService(session, on_change=...)`` callback: proven addresses
        changed owner, so the open pull requests they authored are evaluated again (the
        jobs commit with the change)."""
        return triggers.on_email_change(self.queue, session)

    def approval_hook(self, session: Session) -> Callable[[ApprovalChange], None]:
        """The ``CompanyService(session, on_change=...)`` callback: a company's approvals
        changed, so the open pull requests they can affect are evaluated again."""
        return triggers.on_approval_change(self.queue, session)

    def requeue_open_pull_requests(
        self,
        session: Session,
        *,
        repos: Iterable[str] = (),
        orgs: Iterable[str] = (),
        agreement_id: int | None = None,
    ) -> int:
        """After a policy change, queue an evaluation of every open pull request it can
        affect (after ``session`` commits); returns how many."""
        return triggers.requeue_open_pull_requests(
            self.queue, session, repos=repos, orgs=orgs, agreement_id=agreement_id
        )

    def reevaluate_signers(
        self, session: Session, github_ids: Sequence[int], *, agreement_id: int
    ) -> str:
        """After signatures were imported (the command line and the console), evaluate the
        open pull requests of the people imported again (queued after ``session`` commits);
        a sentence saying what was queued, empty when nothing was."""
        if not github_ids:
            return ""
        if len(github_ids) > PER_PERSON_LIMIT:
            count = self.requeue_open_pull_requests(session, agreement_id=agreement_id)
            return f"re-evaluating {count} open pull request(s)" if count else ""
        hook = self.signature_hook(session)
        for github_id in github_ids:
            hook(github_id, "signed")
        return f"re-evaluating the open pull requests of {len(github_ids)} person(s)"

    def look_up_signer(self, login: str) -> tuple[int, str] | NotAPerson | None:
        """An imported signature's login, asked of GitHub through the bot's client (the
        importers' ``resolve_login``): a person's (id, login), ``NotAPerson`` for an
        organisation or a bot (one call tells both), None for no such account. GitHub
        failing raises ``GitHubError``: each caller says nothing was imported, its own way."""
        account = self.bot.github.account(login)
        if account is None:
            return None
        if not account.is_person:
            return NotAPerson(account.login, account.type)
        return account.id, account.login

    def recheck_pull_request(self, session: Session, repo: str, number: int) -> int:
        """Queue one evaluation of ``repo#number`` (after ``session`` commits); the job id."""
        return triggers.requeue_pull_request(self.queue, session, repo, number)

    def render_metrics(self) -> bytes:
        """``/metrics``: the counters every process recorded, and the domain gauges."""
        return metrics.render(self.database, GAUGES)

    def close(self) -> None:
        """Let go of the queue's connections (and the database, when the runtime made it)."""
        with self._lock:
            queue, self._queue = self._queue, None
        if queue is not None:
            queue.close()
        if self.owns_database:
            self.database.dispose()


def build_runtime(
    settings: Settings,
    database: Database | None = None,
    *,
    extras: dict[str, Any] | None = None,
) -> Runtime:
    """The one way to wire undersign: nothing connects anywhere until first used, except
    one read of the GitHub App registered from the setup page when the environment names no
    app (``github.registration.RegistrationWatch``); one registered later is taken up
    without a restart (``Runtime.refresh_credentials``)."""
    owns_database = database is None
    if database is None:
        database = Database(settings.database_url or "")
    watch = RegistrationWatch(settings, database)
    return Runtime(
        settings=watch.settings,
        database=database,
        handlers=job_handlers(watch.settings),
        extras=dict(extras or {}),
        owns_database=owns_database,
        registration=watch,
    )
