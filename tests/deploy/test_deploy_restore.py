"""The backup and restore runbooks of docs/deploy.md (sections 9 and 10), rehearsed: the
documented commands, run on a throwaway PostgreSQL role and database, restore exactly what
was backed up and keep the replaced database aside; the nightly crontab line runs as cron
would run it and keeps 30 days of dumps."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from huey import RedisHuey
from sqlalchemy import create_engine, text
from tests.support.docs import replace_all, shell_block
from tests.support.processes import UNDERSIGN, clean_env, run

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

pytestmark = pytest.mark.postgres


@dataclass
class Throwaway:
    role: str
    database: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.role}@127.0.0.1:5432/{self.database}"


@pytest.fixture
def throwaway() -> Iterator[Throwaway]:
    """A login role owning a new database, as section 3 makes them; all dropped after."""
    name = f"deploy_restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{name}" LOGIN'))
        connection.execute(text(f'CREATE DATABASE "{name}" OWNER "{name}"'))
    try:
        yield Throwaway(name, name)
    finally:
        with admin.connect() as connection:
            for database in (name, f"{name}_before_restore"):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    if stdin is None:
        return run(list(args), env).stdout
    result = subprocess.run(
        [UNDERSIGN, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _bash(script: str, db: Throwaway, calls: Path) -> None:
    """The doc's commands; ``systemctl`` and ``redis-cli`` are recorded, not run (the
    services are not installed here, and the shared Redis is not ours to empty)."""
    prelude = f'record() {{ echo "$*" >> {calls}; }}\n'
    env = clean_env(PGHOST="127.0.0.1", PGPORT="5432", PGUSER=db.role)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", prelude + script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _migrated(db: Throwaway, tmp_path: Path) -> dict[str, str]:
    """undersign's environment for the throwaway database, its schema brought up to date."""
    env = clean_env(
        UNDERSIGN_ENV="development",
        UNDERSIGN_INSTANCE_PATH=str(tmp_path / "instance"),
        UNDERSIGN_DATABASE_URL=db.url,
    )
    _cli(env, "db", "upgrade")
    return env


def test_backup_then_restore_as_documented(throwaway: Throwaway, tmp_path: Path) -> None:
    env = _migrated(throwaway, tmp_path)
    _cli(env, "agreement", "add", "cla", "--title", "Individual CLA", "--file", "-", stdin="Yes.")
    _cli(env, "repo", "link", "octo/before", "cla")

    backups, calls = tmp_path / "backups", tmp_path / "calls.log"
    db, role = throwaway.database, throwaway.role
    pg_users = [("sudo -u postgres ", "env PGUSER=postgres "), ("sudo -u undersign ", "")]
    backup = replace_all(
        shell_block("deploy.md", "backup"),
        [
            ("sudo install -d -m 0700 -o undersign -g undersign ", "install -d -m 0700 "),
            ("/var/backups/undersign", str(backups)),
            ("--dbname=undersign", f"--dbname={db}"),
            *pg_users[1:],
        ],
    )
    _bash(backup, throwaway, calls)
    [dump] = list(backups.glob("undersign-*.dump"))

    # After the backup: a change the restore must undo.
    _cli(env, "repo", "link", "octo/after", "cla")

    restore = replace_all(
        shell_block("deploy.md", "restore"),
        [
            ("sudo systemctl ", "record systemctl "),
            ("redis-cli ", "record redis-cli "),
            ("/var/backups/undersign/", f"{backups}/"),
            (
                "ALTER DATABASE undersign RENAME TO undersign_before_restore",
                f'ALTER DATABASE "{db}" RENAME TO "{db}_before_restore"',
            ),
            ("createdb --owner undersign undersign", f"createdb --owner {role} {db}"),
            ("--dbname=undersign", f"--dbname={db}"),
            *pg_users,
        ],
    )
    _bash(restore, throwaway, calls)

    links = _cli(env, "repo", "list")
    assert "octo/before" in links
    assert "octo/after" not in links
    assert "cla" in _cli(env, "agreement", "list")
    current = _cli(env, "db", "current").splitlines()
    assert current[0].split()[-1] == current[1].split()[-1]  # database: X / code: X

    aside = {**env, "UNDERSIGN_DATABASE_URL": f"{throwaway.url}_before_restore"}
    assert "octo/after" in _cli(aside, "repo", "list")

    recorded = calls.read_text().splitlines()
    assert recorded[0].startswith("systemctl stop ")  # nothing writes during the swap
    assert recorded[-1].startswith("systemctl start ")
    # The keys the doc deletes are the default queue's, as Huey names them.
    storage = RedisHuey("undersign", url="redis://127.0.0.1:6379/0").storage
    [redis_call] = [line for line in recorded if line.startswith("redis-cli")]
    assert redis_call.split()[-2:] == [storage.queue_key, storage.schedule_key]
    assert dump.stat().st_size > 0


def _cron_command(line: str) -> str:
    """What cron runs (with /bin/sh) for a crontab line: the sixth field on, an unescaped ``%``
    ending the command (the rest would be its standard input), ``\\%`` a plain ``%``."""
    fields = line.split(None, 5)
    assert len(fields) == 6 and all(f.isdigit() or f == "*" for f in fields[:5]), line
    command = fields[5]
    assert "%" not in command.replace("\\%", ""), f"an unescaped % cuts the command: {line}"
    return command.replace("\\%", "%")


def test_the_nightly_backup_line_runs_as_cron_would(throwaway: Throwaway, tmp_path: Path) -> None:
    _migrated(throwaway, tmp_path)  # a database with tables to dump
    backups = tmp_path / "backups"
    backups.mkdir()
    expired = backups / "undersign-2000-01-01.dump"
    expired.write_bytes(b"old")
    subprocess.run(["touch", "-d", "31 days ago", str(expired)], check=True)
    kept = backups / "undersign-recent.dump"
    kept.write_bytes(b"recent")

    block = shell_block("deploy.md", "backup-cron")
    assert block.startswith("echo '") and block.endswith("' | sudo crontab -u undersign -")
    line = block[len("echo '") : -len("' | sudo crontab -u undersign -")]
    command = replace_all(
        _cron_command(line),
        [
            ("/var/backups/undersign", str(backups)),
            ("--dbname=undersign", f"--dbname={throwaway.database}"),
        ],
    )
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        env=clean_env(PGHOST="127.0.0.1", PGPORT="5432", PGUSER=throwaway.role),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    dumps = sorted(path.name for path in backups.iterdir())
    assert not expired.exists()  # older than 30 days: removed
    assert kept.exists()
    [today] = [name for name in dumps if name not in {kept.name}]
    assert today.startswith("undersign-20") and (backups / today).stat().st_size > 1000
    listed = subprocess.run(
        ["pg_restore", "--list", str(backups / today)], capture_output=True, text=True, check=True
    )
    assert "TABLE public alembic_version" in listed.stdout
