"""``undersign import``: each source's fixture into the database, through click's runner, on
SQLite and PostgreSQL, resolving logins against the GitHub emulator over real HTTP."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from tests.support.cli import agreement_commands, assert_clean_failure

from undersign.agreements.importers import MAX_IMPORT_BYTES
from undersign.agreements.models import AuditEntry, Signature
from undersign.agreements.service import AgreementService, SignatureService
from undersign.db import Database
from undersign.emulator import EmulatorServer
from undersign.jobs.models import Job
from undersign.runtime import Runtime, build_runtime

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "imports"
HOSTILE = FIXTURES / "hostile"

# The accounts the fixtures name, as the emulator's GitHub knows them. linus-t-1969 is gone.
ACCOUNTS = {"ada-example": 583231, "grace-h": 1024025, "dependabot-fan": 87654321}


Invoke = Callable[..., Result]


@pytest.fixture
def runtime(
    clean_database: Database, tmp_path: Path, emulator: EmulatorServer
) -> Iterator[Runtime]:
    from tests.conftest import make_settings

    for login, github_id in ACCOUNTS.items():
        emulator.state.add_user(login, user_id=github_id)
    token = emulator.state.issue_token("alice")
    settings = make_settings(tmp_path, "http://127.0.0.1:1", emulator, UNDERSIGN_GITHUB_TOKEN=token)
    built = build_runtime(settings, clean_database)
    yield built
    built.queue.huey.flush()
    built.close()


@pytest.fixture
def run(clean_database: Database, runtime: Runtime, tmp_path: Path) -> Invoke:
    """The command line with the runtime it has for real (a GitHub client, a queue)."""
    text = tmp_path / "cla.md"
    text.write_text("# CLA\n\nYou grant us a licence.\n", encoding="utf-8")
    runner = CliRunner()

    def invoke(*args: str, stdin: str | bytes | None = None) -> Result:
        return runner.invoke(
            agreement_commands,
            list(args),
            obj=SimpleNamespace(database=clean_database, runtime=runtime),
            input=stdin,
        )

    assert invoke("agreement", "add", "cla", "--title", "CLA", "--file", str(text)).exit_code == 0
    return invoke


def import_lite(run: Invoke, *options: str) -> Result:
    """Import the Lite fixture into ``cla``."""
    path = str(FIXTURES / "cla-assistant-lite.json")
    return run("import", "cla-assistant-lite", path, "--agreement", "cla", *options)


def lookups(runtime: Runtime) -> int:
    """``GET /users/{login}`` calls the bot's client really made."""
    return sum(
        count
        for (method, route), count in runtime.bot.github.calls.items()
        if method == "GET" and route.startswith("/users/")
    )


def stored(database: Database) -> list[Signature]:
    with database.session() as session:
        return list(session.scalars(select(Signature).order_by(Signature.github_id)))


def test_a_lite_file_is_imported_with_its_provenance(
    run: Invoke, runtime: Runtime, clean_database: Database
) -> None:
    path = FIXTURES / "cla-assistant-lite.json"
    result = run("import", "cla-assistant-lite", str(path), "--agreement", "cla")
    assert result.exit_code == 0, result.output
    assert "imported 3, already present 0, problems 0 (0 GitHub lookup(s))" in result.stdout
    assert lookups(runtime) == 0  # every entry has its id
    ada, grace, fan = (
        stored(clean_database)[0],
        stored(clean_database)[1],
        stored(clean_database)[2],
    )
    assert (ada.github_id, ada.login) == (583231, "ada-example")
    assert ada.import_source == "cla-assistant-lite"
    assert ada.import_file_sha256 is not None and len(ada.import_file_sha256) == 64
    assert ada.original_signed_at is not None
    assert ada.original_signed_at.isoformat() == "2021-03-04T10:20:30+00:00"
    assert ada.signed_at == ada.original_signed_at
    assert ada.imported_at is not None
    assert ada.import_record is not None and ada.import_record["comment_id"] == 1234567890
    assert ada.text_sha256 is None and ada.ip_address is None and ada.user_agent is None
    assert grace.github_id == 1024025 and fan.github_id == 87654321
    # The people's open pull requests are looked at again: one job per person.
    with clean_database.session() as session:
        kinds = list(session.scalars(select(Job.kind)))
    assert len(kinds) == 3 and set(kinds) == {"person"}
    # Audited, once, by the command line.
    with clean_database.session() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "signatures.import")
        ).one()
    assert audit.actor == "cli"
    assert audit.after is not None and audit.after["imported"] == 3
    assert audit.after["sha256"] == ada.import_file_sha256


def test_importing_the_same_file_twice_changes_nothing(
    run: Invoke, clean_database: Database
) -> None:
    path = FIXTURES / "cla-assistant-lite.json"
    assert run("import", "cla-assistant-lite", str(path), "--agreement", "cla").exit_code == 0
    before = [(s.id, s.github_id, s.signed_at) for s in stored(clean_database)]
    again = run("import", "cla-assistant-lite", str(path), "--agreement", "cla")
    assert again.exit_code == 0, again.output
    assert "imported 0, already present 3, problems 0" in again.stdout
    assert [(s.id, s.github_id, s.signed_at) for s in stored(clean_database)] == before


def test_a_revoked_imported_signature_is_not_brought_back(
    run: Invoke, clean_database: Database
) -> None:
    path = FIXTURES / "cla-assistant-lite.json"
    run("import", "cla-assistant-lite", str(path), "--agreement", "cla")
    with clean_database.session() as session:
        SignatureService(session).revoke(("cla", "grace-h"), by="test", reason="left")
    again = run("import", "cla-assistant-lite", str(path), "--agreement", "cla")
    assert "imported 0, already present 3" in again.stdout
    with clean_database.session() as session:
        assert not SignatureService(session).is_covered("cla", 1024025)


def test_a_cla_assistant_export_resolves_each_login_once_and_reports_the_gone(
    run: Invoke, runtime: Runtime, clean_database: Database
) -> None:
    result = run(
        "import", "cla-assistant", str(FIXTURES / "cla-assistant.csv"), "--agreement", "cla"
    )
    assert result.exit_code == 1, result.output  # a problem: the rest is still imported
    assert "line 4: not-found: GitHub has no account 'linus-t-1969'" in result.stdout
    assert "imported 2, already present 0, problems 1 (3 GitHub lookup(s))" in result.stdout
    assert lookups(runtime) == 3
    assert [(s.github_id, s.login) for s in stored(clean_database)] == [
        (583231, "ada-example"),
        (1024025, "grace-h"),
    ]
    assert stored(clean_database)[0].import_record == {
        "User Name": "ada-example",
        "Repository Owner": "acme-widgets",
        "Repository Name": "widgets",
        "CLA Title": "ACME-CLA.md",
        "Gist URL": "https://gist.github.com/acme-bot/5f3b0c8e2d7a4e1f9b6c0d2e4f6a8b1c",
        "Gist Version": "9e1c7d3a5b2f4e6c8a0b1d3f5e7a9c2b4d6f8e0a",
        "Signed At": "2019-05-14T09:12:33.123Z",
        "Signed for Organisation": "false",
        "Company": "",
    }


def test_the_mongoexport_clahub_and_plain_csv_sources(
    run: Invoke, clean_database: Database
) -> None:
    mongo = run(
        "import", "cla-assistant", str(FIXTURES / "cla-assistant.jsonl"), "--agreement", "cla"
    )
    assert "revoked" in mongo.stdout  # linus's revoked signature is reported, not imported
    clahub = run("import", "clahub", str(FIXTURES / "clahub.csv"), "--agreement", "cla")
    assert "already present 2" in clahub.stdout, clahub.output
    plain = run("import", "csv", str(FIXTURES / "plain.csv"), "--agreement", "cla")
    assert plain.exit_code == 0, plain.output
    assert "imported 1, already present 2" in plain.stdout
    sources = {s.github_id: s.import_source for s in stored(clean_database)}
    assert sources[87654321] == "csv"
    assert sources[583231] == "cla-assistant"


def test_dry_run_reports_and_stores_nothing(run: Invoke, clean_database: Database) -> None:
    result = run(
        "import", "cla-assistant-lite", str(FIXTURES / "cla-assistant-lite.json"),
        "--agreement", "cla", "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "would import 3" in result.stdout
    assert "dry run: nothing was stored" in result.stderr
    assert stored(clean_database) == []


def test_a_malformed_row_imports_nothing(
    run: Invoke, runtime: Runtime, tmp_path: Path, clean_database: Database
) -> None:
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("login,signed_at\nada-example,\ngrace-h,yesterday\n", encoding="utf-8")
    refused = run("import", "csv", str(mixed), "--agreement", "cla")
    assert refused.exit_code == 1
    assert "line 3: malformed: date 'yesterday' is not an ISO 8601 date" in refused.stdout
    assert lookups(runtime) == 0  # a file that cannot be imported costs no GitHub call
    result = run("import", "csv", str(HOSTILE / "malformed.csv"), "--agreement", "cla")
    assert result.exit_code == 1
    assert "line 2: malformed: GitHub id '12ab' is not a whole number" in result.stdout
    assert "nothing was imported" in result.stderr
    assert stored(clean_database) == []  # fine-person (line 17) is not imported either
    with clean_database.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "signatures.import"
        )) == 0  # fmt: skip


def test_duplicates_are_reported_by_line_after_resolution(
    run: Invoke, runtime: Runtime, emulator: EmulatorServer, clean_database: Database
) -> None:
    emulator.state.add_user("dup-one", user_id=3001)
    emulator.state.add_user("dup-two", user_id=3002)
    result = run("import", "csv", str(HOSTILE / "duplicates.csv"), "--agreement", "cla")
    assert result.exit_code == 1
    out = result.stdout
    assert "line 3: duplicate: GitHub id 3001 (dup-one-renamed) already appears on line 2" in out
    assert "line 5: duplicate: login dup-two already appears on line 4" in out
    # Dup-Two resolves to id 3002, which line 6 names too.
    assert "line 6: duplicate: GitHub id 3002 (dup-two) already appears on line 4" in out
    assert lookups(runtime) == 1  # Dup-Two once; dup-two was a duplicate before any call
    assert [s.github_id for s in stored(clean_database)] == [3001, 3002]


def test_an_organisation_or_a_bot_is_reported_not_imported(
    run: Invoke,
    runtime: Runtime,
    emulator: EmulatorServer,
    tmp_path: Path,
    clean_database: Database,
) -> None:
    """GitHub answers ``/users/{login}`` for an organisation and a bot too: a signature is a
    person's, so their lines are problems that say what the account is, not "no such login"."""
    emulator.state.add_org("octo-org")
    emulator.state.add_user("dependabot[bot]", type="Bot")
    people = tmp_path / "people.csv"
    people.write_text("login\nada-example\nocto-org\ndependabot[bot]\n", encoding="utf-8")
    result = run("import", "csv", str(people), "--agreement", "cla")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert (
        "line 3: not-a-person: 'octo-org' is an organisation, not a person: a signature needs "
        "a person's account; not imported" in out
    )
    assert "line 4: not-a-person: 'dependabot[bot]' is a bot, not a person" in out
    assert "not-found" not in out
    assert "imported 1, already present 0, problems 2 (3 GitHub lookup(s))" in out
    assert [s.login for s in stored(clean_database)] == ["ada-example"]


def test_a_file_with_nothing_new_says_why(run: Invoke, clean_database: Database) -> None:
    """After the problems and the summary, the last line says why nothing is new: every line
    a problem, everyone signed already, some of each, or a file with no line at all."""

    def last_line(data: str, *options: str) -> str:
        result = run("import", "csv", "-", "--agreement", "cla", *options, stdin=data)
        return result.stdout.splitlines()[-1]

    gone = "login\nlinus-t-1969\n"
    assert last_line(gone) == "nothing to import: every line has a problem, listed above"
    assert (
        run("import", "csv", "-", "--agreement", "cla", stdin="github_id\n583231\n").exit_code == 0
    )
    assert last_line("github_id\n583231\n", "--dry-run") == (
        "nothing new to import: everyone in the file already has a signature on version 1"
    )
    assert last_line("github_id,login\n583231,ada-example\n,linus-t-1969\n") == (
        "nothing new to import: 1 person in the file already has a signature on version 1, "
        "and every other line has a problem, listed above"
    )
    assert last_line("github_id,login\n") == "nothing to import: the file has no signatures in it"
    assert [s.github_id for s in stored(clean_database)] == [583231]


def test_formula_cells_are_kept_and_neutralised_in_exports(
    run: Invoke, clean_database: Database
) -> None:
    result = run("import", "csv", str(HOSTILE / "formula.csv"), "--agreement", "cla")
    assert result.exit_code == 0, result.output
    assert "line 2: note: name starts like a spreadsheet formula" in result.stdout
    names = {s.login: s.name for s in stored(clean_database)}
    assert names["formula-plus"] == "+1+2"  # the data is kept as written
    exported = run("signatures", "export", "cla", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    by_login = {row["login"]: row for row in rows}
    assert by_login["formula-eq"]["name"].startswith("'=HYPERLINK(")
    assert by_login["formula-plus"]["name"] == "'+1+2"
    assert by_login["formula-at"]["name"].startswith("'@SUM")
    assert all(row["imported"] == "yes" and row["import_source"] == "csv" for row in rows)
    assert all(row["text_sha256"] == "" for row in rows)


def test_exports_and_receipts_say_imported(run: Invoke, clean_database: Database) -> None:
    import_lite(run)
    exported = json.loads(run("signatures", "export", "cla").stdout)
    ada = next(row for row in exported if row["github_id"] == 583231)
    assert ada["imported"] is True
    assert ada["import_source"] == "cla-assistant-lite"
    assert ada["original_signed_at"] == "2021-03-04T10:20:30Z"
    assert ada["import_record"]["pullRequestNo"] == 12
    assert ada["text_sha256"] is None
    # The existing fields are all still there, named as before.
    for name in ("github_id", "login", "name", "email", "version", "signed_at", "fields"):
        assert name in ada
    with clean_database.session() as session:
        service = SignatureService(session)
        signature = service.signatures_of(583231)[0]
        receipt = service.receipt_text(signature)
    assert "imported from cla-assistant-lite; undersign did not witness it" in receipt
    assert "- Text SHA-256: none (imported signature)" in receipt
    assert "BEGIN AGREEMENT TEXT" not in receipt  # nothing it could prove


def test_an_imported_person_is_covered(run: Invoke, clean_database: Database) -> None:
    import_lite(run)
    with clean_database.session() as session:
        assert SignatureService(session).covered_ids("cla", [583231, 1024025, 5]) == {
            583231,
            1024025,
        }


def test_an_older_version_can_be_named(
    run: Invoke, tmp_path: Path, clean_database: Database
) -> None:
    text = tmp_path / "v2.md"
    text.write_text("# CLA\n\nNew terms.\n", encoding="utf-8")
    assert run("agreement", "add", "cla", "--title", "CLA", "--file", str(text)).exit_code == 0
    path = str(FIXTURES / "cla-assistant-lite.json")
    result = run("import", "cla-assistant-lite", path, "--agreement", "cla", "--version", "1")
    assert "into cla v1" in result.stdout
    with clean_database.session() as session:
        # Version 2 is a material change: the imported version 1 signatures do not cover.
        assert SignatureService(session).covered_ids("cla", [583231]) == set()
    missing = run("import", "cla-assistant-lite", path, "--agreement", "cla", "--version", "9")
    assert_clean_failure(missing, "has no version 9")


# Whole files refused: a clear message, nothing stored.


@pytest.mark.parametrize(
    ("source", "name", "message"),
    [
        ("csv", "latin1.csv", "is not UTF-8; the file is probably Latin-1"),
        ("csv", "utf16-without-bom.csv", "NUL character"),
        ("csv", "missing-columns.csv", "the header needs 'github_id' or 'login'"),
        ("cla-assistant-lite", "lite-duplicate-key.json", "appears twice"),
    ],
)
def test_unreadable_files_are_refused(
    run: Invoke, clean_database: Database, source: str, name: str, message: str
) -> None:
    result = run("import", source, str(HOSTILE / name), "--agreement", "cla")
    assert_clean_failure(result, message)
    assert "nothing was imported" in result.output
    assert stored(clean_database) == []


def test_a_file_over_the_limit_is_refused_before_it_is_read(
    run: Invoke, tmp_path: Path, clean_database: Database
) -> None:
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as stream:  # sparse: the size is real, the disk is not used
        stream.write(b"github_id,login\n")
        stream.truncate(MAX_IMPORT_BYTES + 1)
    result = run("import", "csv", str(huge), "--agreement", "cla")
    assert_clean_failure(result, f"larger than the import limit of {MAX_IMPORT_BYTES:,} bytes")
    assert stored(clean_database) == []


def test_bad_arguments_are_clear(run: Invoke, tmp_path: Path) -> None:
    path = str(FIXTURES / "plain.csv")
    assert_clean_failure(run("import", "docusign", path, "--agreement", "cla"), "docusign")
    assert_clean_failure(run("import", "csv", path, "--agreement", "nope"), "nope")
    assert_clean_failure(
        run("import", "csv", str(tmp_path / "missing.csv"), "--agreement", "cla"), "cannot read"
    )
    assert_clean_failure(run("import", "csv", path), "--agreement")


def test_stdin_is_read_too(run: Invoke, clean_database: Database) -> None:
    data = (FIXTURES / "cla-assistant-lite.json").read_bytes()
    result = run("import", "cla-assistant-lite", "-", "--agreement", "cla", stdin=data)
    assert result.exit_code == 0, result.output
    assert len(stored(clean_database)) == 3


def test_without_github_logins_cannot_be_resolved(clean_database: Database, tmp_path: Path) -> None:
    with clean_database.session() as session:
        AgreementService(session).add_or_update("cla", "CLA", "Text.\n")
    result = CliRunner().invoke(
        agreement_commands,
        ["import", "cla-assistant", str(FIXTURES / "cla-assistant.csv"), "--agreement", "cla"],
        obj=SimpleNamespace(database=clean_database),
    )
    assert_clean_failure(result, "resolving them needs GitHub")
    assert stored(clean_database) == []


def test_without_a_token_or_an_app_the_command_says_what_to_set(
    clean_database: Database, tmp_path: Path, emulator: EmulatorServer
) -> None:
    """The real command line always has a runtime; with neither a bot token nor a GitHub App
    its client cannot be made. A file with logins then ends in one line naming the settings
    (it was a RuntimeError's traceback), and nothing is imported."""
    from tests.conftest import make_settings

    with clean_database.session() as session:
        AgreementService(session).add_or_update("cla", "CLA", "Text.\n")
    settings = make_settings(tmp_path, "http://127.0.0.1:1", emulator, UNDERSIGN_GITHUB_TOKEN="")
    runtime = build_runtime(settings, clean_database)
    try:
        result = CliRunner().invoke(
            agreement_commands,
            ["import", "csv", "-", "--agreement", "cla"],
            obj=SimpleNamespace(database=clean_database, runtime=runtime),
            input="login\nada-example\n",
        )
    finally:
        runtime.close()
    assert_clean_failure(
        result,
        "the file has logins without a GitHub id ('ada-example'); resolving them needs GitHub, "
        "which undersign cannot ask (UNDERSIGN_GITHUB_TOKEN is not set",
    )
    assert (
        "nothing was imported: set UNDERSIGN_GITHUB_TOKEN, or the GitHub App's "
        "UNDERSIGN_GITHUB_APP_ID and UNDERSIGN_GITHUB_APP_PRIVATE_KEY, or give every line its "
        "GitHub id"
    ) in result.output
    assert stored(clean_database) == []


# Report mode on the command line.


def test_links_take_a_mode(run: Invoke, clean_database: Database) -> None:
    result = run("repo", "link", "octo/widgets", "cla", "--mode", "report")
    assert result.exit_code == 0, result.output
    assert "octo/widgets is covered by cla in report mode" in result.stderr
    run("org", "link", "octo", "cla", "--mode", "report", "--report-comments")
    assert run("repo", "list").stdout == "octo/widgets\tcla\treport\n"
    assert run("org", "list").stdout == "octo\tcla\treport,report-comments\n"
    with clean_database.session() as session:
        coverage = AgreementService(session).coverage_for_repo("octo/gadgets")
        assert coverage is not None and coverage.report_only and coverage.report_comments
    run("repo", "link", "octo/widgets", "cla", "--mode", "enforce")
    assert run("repo", "list").stdout == "octo/widgets\tcla\n"
    assert_clean_failure(run("repo", "link", "octo/widgets", "cla", "--mode", "loud"), "loud")
