"""What an operator meets when something around undersign is wrong: one line that names the
problem and the fix, a non-zero exit, no traceback; the worker waits for Redis with one line
per attempt, and /readyz says the queue is down."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from tests.support.processes import UNDERSIGN, clean_env, free_port, start, start_serve

PASSWORD = "hunter2-do-not-print"
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    return clean_env(
        UNDERSIGN_ENV="development",
        UNDERSIGN_INSTANCE_PATH=str(tmp_path / "instance"),
        **values,
    )


def _fails_with_one_line(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [UNDERSIGN, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert PASSWORD not in result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["db current", "db upgrade", "serve --port {port}"])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: str) -> None:
    closed = free_port()
    args = command.format(port=free_port()).split()
    env = _env(
        tmp_path,
        UNDERSIGN_DATABASE_URL=f"postgresql+psycopg://undersign:{PASSWORD}@127.0.0.1:{closed}/x",
    )
    line = _fails_with_one_line(args, env)
    assert "cannot use the database" in line
    assert "check UNDERSIGN_DATABASE_URL and that the database server is running" in line


@pytest.mark.parametrize(
    "scheme", ["postgres", "postgresql", "postgresql+psycopg2", "POSTGRES", "mysql"]
)
def test_database_url_forms_that_cannot_work_name_the_one_that_does(
    tmp_path: Path, scheme: str
) -> None:
    env = _env(tmp_path, UNDERSIGN_DATABASE_URL=f"{scheme}://u:{PASSWORD}@db.internal/undersign")
    line = _fails_with_one_line(["db", "current"], env)
    assert f"UNDERSIGN_DATABASE_URL: {scheme.lower()}:// is not supported" in line
    assert "postgresql+psycopg://" in line


def test_a_bad_value_under_db_upgrade_is_a_configuration_error(tmp_path: Path) -> None:
    env = _env(tmp_path, UNDERSIGN_TRUSTED_PROXIES="1       # nginx in front")
    line = _fails_with_one_line(["db", "upgrade"], env)
    assert "configuration: UNDERSIGN_TRUSTED_PROXIES: expected a whole number" in line
    assert "database upgrade failed" not in line


@pytest.mark.redis
def test_worker_waits_for_redis_with_one_line_per_attempt(tmp_path: Path) -> None:
    env = _env(tmp_path, UNDERSIGN_QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0")
    subprocess.run([UNDERSIGN, "db", "upgrade"], env=env, check=True, timeout=120)
    worker = start(["worker"], env, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.output().count("queue unreachable") < 3:
            time.sleep(0.2)
        time.sleep(0.5)
        assert worker.popen.poll() is None, worker.output()  # still waiting, not given up
    finally:
        worker.stop()
    output = worker.output()
    attempts = [line for line in output.splitlines() if "queue unreachable" in line]
    assert len(attempts) >= 3, output
    assert "Traceback" not in output
    # Growing waits, numbered attempts: 1 s, 2 s, 4 s ...
    for number, line in enumerate(attempts[:3], start=1):
        assert f"attempt {number} failed, next in {2 ** (number - 1)} s" in line, line


@pytest.mark.redis
def test_readyz_says_the_queue_is_down(tmp_path: Path) -> None:
    env = _env(tmp_path, UNDERSIGN_QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0")
    subprocess.run([UNDERSIGN, "db", "upgrade"], env=env, check=True, timeout=120)
    serve = start_serve(env, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = httpx.get(f"{serve.url}/readyz", timeout=5)
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None, serve.output()
        assert answer.status_code == 503
        assert answer.json()["failed"] == ["queue"]
        assert httpx.get(f"{serve.url}/healthz", timeout=5).status_code == 200
    finally:
        serve.stop()


@pytest.mark.postgres
def test_a_search_path_naming_no_schema_says_to_create_it(tmp_path: Path) -> None:
    """docs/deploy.md section 3: undersign's tables in a schema of their own. Until the
    schema exists, PostgreSQL has nowhere to create them: the migration says so and how."""
    database = f"deploy_schema_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    try:
        env = _env(tmp_path, UNDERSIGN_DATABASE_URL=f"{url}?options=-csearch_path%3Dundersign")
        line = _fails_with_one_line(["db", "upgrade"], env)
        assert "no schema has been selected to create in" in line
        assert "CREATE SCHEMA" in line and "up to date" not in line

        subprocess.run(
            [
                "psql",
                "--quiet",
                "--dbname",
                url.replace("+psycopg", ""),
                "--command",
                "CREATE SCHEMA undersign AUTHORIZATION postgres",
            ],
            check=True,
            timeout=60,
        )
        subprocess.run([UNDERSIGN, "db", "upgrade"], env=env, check=True, timeout=120)
        with create_engine(url).connect() as connection:
            tables = connection.scalar(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'undersign'")
            )
        assert tables and tables > 10
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
