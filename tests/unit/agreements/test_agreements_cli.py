"""The maintainers' commands, through click's runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tests.support.cli import agreement_commands, assert_clean_failure

from undersign.agreements.service import AgreementService, SignatureService
from undersign.db import Database
from undersign.emulator import EmulatorServer


@pytest.fixture
def run(clean_database: Database) -> object:
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(
            agreement_commands,
            list(args),
            obj=SimpleNamespace(database=clean_database),
            input=stdin,
        )

    return invoke


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "cla.md"
    path.write_text("# CLA\n\nYou grant us a licence.\n", encoding="utf-8")
    return path


def test_agreement_add_creates_then_versions(
    run, text_file: Path, clean_database: Database
) -> None:
    result = run("agreement", "add", "cla", "--title", "Our CLA", "--file", str(text_file))
    assert result.exit_code == 0, result.output
    assert result.stdout == "1\n"

    result = run("agreement", "add", "cla", "--title", "Our CLA", "--file", str(text_file))
    assert result.stdout == "1\n"
    assert "unchanged" in result.stderr

    text_file.write_text("# CLA\n\nYou grant us a license.\n", encoding="utf-8")
    result = run(
        "agreement", "add", "cla", "--title", "Our CLA", "--file", str(text_file), "--editorial"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "2\n"

    text_file.write_text("# CLA\n\nNew terms.\n", encoding="utf-8")
    result = run("agreement", "add", "cla", "--title", "Our CLA", "--file", str(text_file))
    assert result.stdout == "3\n"

    with clean_database.session() as session:
        versions = AgreementService(session).get("cla").versions
        assert [(v.number, v.change_type) for v in versions] == [
            (1, "material"),
            (2, "editorial"),
            (3, "material"),
        ]
    listing = run("agreement", "list")
    assert listing.stdout == "cla\tv3\tOur CLA\tbots: default list\tagents: require-human\n"


def test_agreement_add_reads_stdin_and_fields(
    run, tmp_path: Path, clean_database: Database
) -> None:
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps([{"name": "country", "label": "Country", "type": "country"}]))
    result = run(
        "agreement",
        "add",
        "cla",
        "--title",
        "CLA",
        "--file",
        "-",
        "--fields",
        str(fields),
        stdin="Terms.\n",
    )
    assert result.exit_code == 0, result.output
    with clean_database.session() as session:
        agreement = AgreementService(session).get("cla")
        assert [f.name for f in agreement.fields] == ["country"]
        assert agreement.versions[0].text == "Terms.\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--file", "/nonexistent/cla.md"], "cannot read agreement text"),
        (["--file", "/"], "cannot read agreement text"),
        (["--file", "BINARY"], "not UTF-8"),
        (["--file", "TEXT", "--fields", "BADJSON"], "not valid JSON"),
        (["--file", "TEXT", "--fields", "BADFIELDS"], "reserved"),
        (["--file", "EMPTY"], "empty"),
    ],
)
def test_agreement_add_errors(
    run, tmp_path: Path, text_file: Path, args: list[str], message: str
) -> None:
    files = {
        "BINARY": tmp_path / "bin.md",
        "TEXT": text_file,
        "BADJSON": tmp_path / "bad.json",
        "BADFIELDS": tmp_path / "fields.json",
        "EMPTY": tmp_path / "empty.md",
    }
    files["BINARY"].write_bytes(b"\xff\xfe\x00bad")
    files["BADJSON"].write_text("[{")
    files["BADFIELDS"].write_text('[{"name": "email", "label": "Email"}]')
    files["EMPTY"].write_text("\n\n")
    args = [str(files[a]) if a in files else a for a in args]
    result = run("agreement", "add", "cla", "--title", "CLA", *args)
    assert_clean_failure(result, message)


def test_bad_slug_is_refused(run, text_file: Path) -> None:
    result = run("agreement", "add", "Not A Slug", "--title", "CLA", "--file", str(text_file))
    assert_clean_failure(result, "not a valid slug")


def test_repo_and_org_links(run, text_file: Path, clean_database: Database) -> None:
    for slug in ("org-cla", "repo-cla"):
        assert (
            run("agreement", "add", slug, "--title", slug, "--file", str(text_file)).exit_code == 0
        )
    assert run("org", "link", "Acme", "org-cla", "--exempt-org-members").exit_code == 0
    result = run("repo", "link", "Acme/Widget", "repo-cla")
    assert result.exit_code == 0, result.output
    with clean_database.session() as session:
        service = AgreementService(session)
        assert service.agreement_for_repo("acme/widget").slug == "repo-cla"  # type: ignore[union-attr]
        assert service.agreement_for_repo("ACME/other").slug == "org-cla"  # type: ignore[union-attr]
    assert run("repo", "list").stdout == "acme/widget\trepo-cla\n"
    assert run("org", "list").stdout == "acme\torg-cla\texempt-org-members\n"
    assert run("repo", "unlink", "acme/widget").exit_code == 0
    assert_clean_failure(run("repo", "unlink", "acme/widget"), "has no repository link")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["repo", "link", "not-a-repo", "cla"], "OWNER/REPO"),
        (["repo", "link", "a/b/c", "cla"], "OWNER/REPO"),
        (["repo", "link", "acme/widget", "missing"], "no agreement with slug 'missing'"),
        (["org", "link", "bad org", "cla"], "not a GitHub organization"),
        (["org", "link", "acme", "missing"], "no agreement"),
        (["signatures", "export", "missing"], "no agreement"),
        (["signatures", "export", "cla", "--version", "9"], "no version 9"),
        (["signatures", "revoke", "missing", "alice", "--reason", "x"], "no agreement"),
        (["signatures", "revoke", "cla", "nobody", "--reason", "x"], "no one with login"),
        (["allowlist", "add", "missing", "bot"], "no agreement"),
        (["allowlist", "add", "cla", "*"], "not an allowlist pattern"),
        (["allowlist", "remove", "cla", "bot"], "is not on the allowlist"),
    ],
)
def test_bad_input_gives_a_clear_error(run, text_file: Path, args: list[str], message: str) -> None:
    assert run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file)).exit_code == 0
    assert_clean_failure(run(*args), message)


def test_a_database_without_tables_gives_a_clear_error(tmp_path: Path, text_file: Path) -> None:
    empty = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    result = CliRunner().invoke(
        agreement_commands,
        ["agreement", "add", "cla", "--title", "CLA", "--file", str(text_file)],
        obj=SimpleNamespace(database=empty),
    )
    empty.dispose()
    assert_clean_failure(result, "undersign db upgrade")


def test_missing_database_object(text_file: Path) -> None:
    result = CliRunner().invoke(agreement_commands, ["agreement", "list"], obj=None)
    assert_clean_failure(result, "no database is configured")


def _sign(
    database: Database, github_id: int, login: str, name: str, email: str = "x@example.org"
) -> None:
    with database.session() as session:
        service = SignatureService(session)
        service.sign(
            "cla",
            github_id=github_id,
            login=login,
            name=name,
            email=email,
            agreed=True,
            version_sha256=service.agreements.current_version("cla").text_sha256,
            field_values={"team": name},
        )


def test_export_json_and_csv(
    run, text_file: Path, tmp_path: Path, clean_database: Database
) -> None:
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps([{"name": "team", "label": "Team"}]))
    run(
        "agreement",
        "add",
        "cla",
        "--title",
        "CLA",
        "--file",
        str(text_file),
        "--fields",
        str(fields),
    )
    _sign(clean_database, 1, "alice", '=HYPERLINK("http://evil","x")')
    _sign(clean_database, 2, "bob", "@SUM(A1)", email="-1+1@example.org")

    empty_result = run("signatures", "export", "cla", "--version", "1", "--format", "json")
    assert empty_result.exit_code == 0

    result = run("signatures", "export", "cla")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["login"] for r in rows] == ["alice", "bob"]
    for key in (
        "github_id",
        "login",
        "name",
        "email",
        "version",
        "text_sha256",
        "signed_at",
        "revoked_at",
    ):
        assert key in rows[0]
    assert rows[0]["name"] == '=HYPERLINK("http://evil","x")'  # JSON is data, not a formula

    result = run("signatures", "export", "cla", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('"github_id","login","name"')
    table = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert table[0]["name"] == '\'=HYPERLINK("http://evil","x")'
    assert table[0]["field_team"] == '\'=HYPERLINK("http://evil","x")'
    assert table[1]["name"] == "'@SUM(A1)"
    assert table[1]["email"] == "'-1+1@example.org"
    assert table[0]["version"] == "1"


def test_empty_export_is_an_empty_array(run, text_file: Path) -> None:
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))
    assert json.loads(run("signatures", "export", "cla").stdout) == []


def test_revoke_by_login(run, text_file: Path, clean_database: Database) -> None:
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))
    _sign(clean_database, 7, "Alice", "Alice")
    result = run("signatures", "revoke", "cla", "ALICE", "--reason", "asked by email")
    assert result.exit_code == 0, result.output
    assert "GitHub id 7" in result.stderr
    rows = json.loads(run("signatures", "export", "cla").stdout)
    assert rows[0]["revoked_at"] is not None
    assert rows[0]["revocation_reason"] == "asked by email"
    assert rows[0]["revoked_by"].startswith("command line")
    assert_clean_failure(
        run("signatures", "revoke", "cla", "alice", "--reason", "again"), "no active signature"
    )
    assert_clean_failure(run("signatures", "revoke", "cla", "alice"), "--reason")


def test_allowlist_commands(run, text_file: Path) -> None:
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))
    assert run("allowlist", "add", "cla", "dependabot[bot]", "--note", "Dependabot").exit_code == 0
    assert run("allowlist", "add", "cla", "*-bot").exit_code == 0
    assert run("allowlist", "list", "cla").stdout == "*-bot\ndependabot[bot]\tDependabot\n"
    assert run("allowlist", "remove", "cla", "*-BOT").exit_code == 0
    assert run("allowlist", "list", "cla").stdout == "dependabot[bot]\tDependabot\n"


# Policy changes re-evaluate the open pull requests they affect (with full settings only).


@pytest.fixture
def run_with_settings(
    clean_database: Database, tmp_path: Path, emulator: EmulatorServer
) -> Iterator[Callable[..., Result]]:
    """Like ``run``, with the runtime the real command line has: changes queue jobs."""
    from tests.conftest import make_settings

    from undersign.runtime import build_runtime

    settings = make_settings(tmp_path, "http://127.0.0.1:1", emulator)
    runtime = build_runtime(settings, clean_database)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(
            agreement_commands,
            list(args),
            obj=SimpleNamespace(database=clean_database, runtime=runtime),
        )
        assert result.exit_code == 0, result.output
        return result

    yield invoke
    runtime.queue.huey.flush()
    runtime.close()


def _open_checks(database: Database, *rows: tuple[str, int, bool]) -> None:
    from undersign.enforcement.models import PullRequestCheck

    with database.session() as session:
        for name, number, is_open in rows:
            session.add(PullRequestCheck(repo_full_name=name, number=number, is_open=is_open))


def _queued(database: Database) -> list[tuple[str, int]]:
    """The pull requests queued for evaluation since the last call (their jobs then go)."""
    from sqlalchemy import delete, select

    from undersign.jobs.models import Job

    with database.session() as session:
        jobs = list(session.scalars(select(Job).order_by(Job.id)))
        session.execute(delete(Job))
    assert all(job.kind == "evaluate" and job.status == "queued" for job in jobs)
    return sorted((job.payload["repo"], job.payload["number"]) for job in jobs)


def test_policy_changes_queue_the_open_pull_requests_they_affect(
    run_with_settings,
    text_file: Path,
    tmp_path: Path,
    clean_database: Database,
) -> None:
    run = run_with_settings
    other_text = tmp_path / "other.md"
    other_text.write_text("Another agreement.\n", encoding="utf-8")
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))
    run("agreement", "add", "corp", "--title", "Corp", "--file", str(other_text))
    run("org", "link", "octo", "cla")
    run("repo", "link", "octo/special", "corp")  # wins over the org's link
    _open_checks(
        clean_database,
        ("octo/widgets", 1, True),
        ("octo/widgets", 2, False),  # closed: nothing to re-evaluate
        ("octo/special", 3, True),
        ("other/x", 4, True),  # covered by nothing
        ("octo/gadgets", 5, True),
        ("octopus/y", 6, True),  # a different owner sharing a prefix
    )
    assert _queued(clean_database) == []

    run("allowlist", "add", "cla", "*-bot")
    assert _queued(clean_database) == [("octo/gadgets", 5), ("octo/widgets", 1)]
    run("allowlist", "remove", "cla", "*-bot")
    assert _queued(clean_database) == [("octo/gadgets", 5), ("octo/widgets", 1)]
    run("allowlist", "add", "corp", "*-bot")
    assert _queued(clean_database) == [("octo/special", 3)]

    text_file.write_text("# CLA\n\nYou grant us more.\n", encoding="utf-8")
    result = run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))
    assert "re-evaluating 2 open pull request(s)" in result.output
    assert _queued(clean_database) == [("octo/gadgets", 5), ("octo/widgets", 1)]
    text_file.write_text("# CLA\n\nYou grant us more (typo).\n", encoding="utf-8")
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file), "--editorial")
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))  # unchanged
    assert _queued(clean_database) == []

    run("repo", "link", "Other/X", "corp")
    assert _queued(clean_database) == [("other/x", 4)]
    run("repo", "unlink", "OCTO/special")
    assert _queued(clean_database) == [("octo/special", 3)]
    run("org", "unlink", "Octo")
    assert _queued(clean_database) == [
        ("octo/gadgets", 5),
        ("octo/special", 3),
        ("octo/widgets", 1),
    ]


def test_without_settings_nothing_is_queued(run, text_file: Path, clean_database: Database) -> None:
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))
    run("org", "link", "octo", "cla")
    _open_checks(clean_database, ("octo/widgets", 1, True))
    assert run("allowlist", "add", "cla", "*-bot").exit_code == 0
    assert _queued(clean_database) == []


def test_agreement_bots_by_id_and_the_all_bots_opt_in(run: Any, text_file: Path) -> None:
    assert (
        run("agreement", "add", "cla", "--title", "Our CLA", "--file", str(text_file)).exit_code
        == 0
    )
    shown = run("agreement", "bots", "cla")
    assert shown.exit_code == 0 and "default list" in shown.stderr
    assert "49699333 (dependabot[bot])" in shown.stdout.splitlines()
    added = run("agreement", "bots", "cla", "--add", "123", "--remove", "49699333")
    assert added.exit_code == 0 and "this agreement's list" in added.stderr
    assert "123" in added.stdout.splitlines() and "49699333 (dependabot[bot])" not in added.stdout
    risky = run("agreement", "bots", "cla", "--all-bots")
    assert "ALL BOTS" in risky.stdout and "WARNING every bot account is exempt" in risky.stderr
    assert "bots: ALL (risky)" in run("agreement", "list").stdout
    back = run("agreement", "bots", "cla", "--listed-bots", "--reset")
    assert "ALL BOTS" not in back.stdout and "default list" in back.stderr
    assert_clean_failure(run("agreement", "bots", "cla", "--add", "0"), "0")
    assert_clean_failure(run("agreement", "bots", "nope", "--add", "1"), "no agreement")


def test_agreement_agent_policy(run: Any, text_file: Path) -> None:
    assert (
        run("agreement", "add", "cla", "--title", "Our CLA", "--file", str(text_file)).exit_code
        == 0
    )
    assert "agents: refuse" in run("agreement", "policy", "cla", "--agents", "refuse").stderr
    assert "agents: refuse" in run("agreement", "list").stdout
    bad = run("agreement", "policy", "cla", "--agents", "maybe")
    assert bad.exit_code == 2 and "require-human" in bad.output


def test_a_corporate_agreements_settings_are_refused(
    run: Any, text_file: Path, tmp_path: Path, clean_database: Database
) -> None:
    """Its allowlist, bots, agents' policy, fields and imports would never be read (pull
    requests are judged with the individual agreement's): each command fails plainly, naming
    that agreement, and nothing is stored or audited."""
    add = ("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))
    assert run(*add).exit_code == 0
    corporate = ("--title", "Corporate CLA", "--file", str(text_file))
    added = run("agreement", "add", "cla-corp", *corporate, "--kind", "corporate", "--for", "cla")
    assert added.exit_code == 0, added.output
    with clean_database.session() as session:
        audited = len(AgreementService(session).audit_log("cla-corp"))
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps([{"name": "org", "label": "Org"}]), encoding="utf-8")
    people = tmp_path / "people.csv"
    people.write_text("github_id,login\n583231,ada-example\n", encoding="utf-8")
    refused: dict[str, list[tuple[str, ...]]] = {
        "allowlist": [
            ("allowlist", "add", "cla-corp", "robot-*"),
            ("allowlist", "remove", "cla-corp", "robot-*"),
        ],
        "exempt bots": [("agreement", "bots", "cla-corp", "--add", "123", "--all-bots")],
        "AI agents' policy": [("agreement", "policy", "cla-corp", "--agents", "refuse")],
        "custom fields": [("agreement", "add", "cla-corp", *corporate, "--fields", str(fields))],
        "imported signatures": [("import", "csv", str(people), "--agreement", "cla-corp")],
    }
    for what, commands in refused.items():
        for command in commands:
            result = run(*command)
            assert_clean_failure(result, f"whose {what} would never be read")
            assert "the individual agreement 'cla'" in result.output, command
    with clean_database.session() as session:
        service = AgreementService(session)
        item = service.get("cla-corp")
        assert (item.field_definitions, item.agent_policy) == ([], "require-human")
        assert (item.exempt_bot_ids, item.exempt_all_bots) == (None, False)
        assert service.allowlist("cla-corp") == []
        assert len(service.audit_log("cla-corp")) == audited
        assert list(SignatureService(session).export("cla-corp")) == []


def test_every_change_from_the_command_line_is_audited(
    run, text_file: Path, clean_database: Database
) -> None:
    """Who (``cli``), what, before and after, in the transaction of the change."""
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file))
    text_file.write_text("# CLA\n\nNew terms.\n", encoding="utf-8")
    run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file), "--editorial")
    assert run("repo", "link", "acme/widget", "cla").exit_code == 0
    assert run("repo", "link", "acme/widget", "cla", "--exempt-org-members").exit_code == 0
    assert run("org", "link", "acme", "cla").exit_code == 0
    assert run("org", "unlink", "acme").exit_code == 0
    assert run("allowlist", "add", "cla", "*-bot").exit_code == 0
    assert run("allowlist", "remove", "cla", "*-bot").exit_code == 0
    _sign(clean_database, 7, "alice", "Alice")
    assert run("signatures", "revoke", "cla", "alice", "--reason", "left").exit_code == 0
    # A command that changes nothing leaves no row.
    assert run("agreement", "add", "cla", "--title", "CLA", "--file", str(text_file)).exit_code == 0

    with clean_database.session() as session:
        log = list(reversed(AgreementService(session).audit_log("cla")))
        rows = [(e.actor, e.action, e.before, e.after) for e in log]
    assert [action for _, action, _, _ in rows] == [
        "version.publish",
        "version.publish",
        "repo.link",
        "repo.link",
        "org.link",
        "org.unlink",
        "allowlist.add",
        "allowlist.remove",
        "signature.revoke",
    ]
    assert {actor for actor, _, _, _ in rows} == {"cli"}
    assert rows[1][2] is not None and rows[1][2]["version"] == 1
    assert rows[1][3] is not None and rows[1][3]["version"] == 2
    assert rows[1][3]["change_type"] == "editorial"
    assert rows[3][2] == {
        "agreement": "cla",
        "exempt_org_members": False,
        "exempt_collaborators": False,
        "mode": "enforce",
        "report_comments": False,
    }
    assert rows[3][3] is not None and rows[3][3]["exempt_org_members"] is True
    assert rows[7] == ("cli", "allowlist.remove", {"pattern": "*-bot", "note": ""}, None)
    assert rows[8][3] is not None and rows[8][3]["reason"] == "left"
    assert rows[8][3]["active"] is False
