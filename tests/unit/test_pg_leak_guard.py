"""The PostgreSQL connection leak guard (tests/support/pg_leaks.py) is no rubber stamp.

A throwaway suite with the guard registered, as tests/conftest.py registers it on PostgreSQL
runs, runs in its own pytest process: a file that keeps an engine's connection open errors
and is named with the count, a file whose connection names another ``application_name`` is
still caught (by its client port), and a file that disposes its engine passes although the
leaked connections of the files before it are still open.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import make_url
from tests.support.databases import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.postgres

KEEPS_ONE = """
from sqlalchemy import create_engine, text

KEPT = []


def test_keeps_an_engine_with_one_idle_connection():
    engine = create_engine({url!r})
    with engine.connect() as connection:
        connection.execute(text("SELECT 'kept open'"))
    KEPT.append(engine)  # never disposed: its pool keeps the connection
"""

KEEPS_TWO_NAMED = """
from sqlalchemy import create_engine, text

KEPT = []


def test_keeps_two_connections_named_otherwise():
    engine = create_engine({url!r}, connect_args={{"application_name": "not-the-tests"}})
    with engine.connect() as first, engine.connect() as second:
        first.execute(text("SELECT 1"))
        second.execute(text("SELECT 2"))
    KEPT.append(engine)
"""

DISPOSES = """
from sqlalchemy import create_engine, text


def test_disposes_its_engine():
    engine = create_engine({url!r})
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()


def test_drops_its_engine():
    engine = create_engine({url!r})
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    del engine  # garbage: the guard collects it before counting
"""

CONFTEST = """
from tests.support.pg_leaks import register_leak_guard


def pytest_configure(config):
    register_leak_guard(config, {url!r})
"""


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> str:
    option = str(request.config.getoption("--db"))
    return option if option.startswith("postgresql") else POSTGRES_URL


def test_the_guard_fails_the_files_that_leave_connections_open(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, server_url: str
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    url = make_url(server_url).render_as_string(hide_password=False)
    pytester.makeconftest(CONFTEST.format(url=url))
    pytester.makepyfile(
        test_a_keeps_one=KEEPS_ONE.format(url=url),
        test_b_keeps_two_named=KEEPS_TWO_NAMED.format(url=url),
        test_c_disposes=DISPOSES.format(url=url),
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")

    result.assert_outcomes(passed=4, errors=2)
    output = result.stdout.str()
    assert "test_a_keeps_one.py left 1 PostgreSQL connection open" in output
    assert "application_name='undersign-tests-" in output  # found by its name
    assert "test_b_keeps_two_named.py left 2 PostgreSQL connections open" in output
    assert "application_name='not-the-tests'" in output  # found by its client port
    assert "test_c_disposes.py left" not in output


def test_the_guard_is_not_loaded_on_sqlite_runs(request: pytest.FixtureRequest) -> None:
    registered = request.config.pluginmanager.has_plugin("postgres-connection-leak-guard")
    assert registered == str(request.config.getoption("--db")).startswith("postgresql")
