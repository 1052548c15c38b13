"""The Redis connection leak guard (tests/support/redis_leaks.py) is no rubber stamp.

A throwaway suite with the guard registered, as tests/conftest.py registers it on runs whose
queue is on Redis, runs in its own pytest process: a file whose subprocess keeps a connection
open errors, naming the count and the connection's name and last command (found by the name
its URL gave it), a file whose clients carry no name is still caught (by their client ports),
and a file that closes or drops its clients passes although the leaked connections of the
files before it are still open.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.conftest import redis_test_url

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.redis

KEEPS_ONE_NAMED = """
import subprocess
import sys

from tests.support.redis_leaks import named_url

HOLDER = '''
import sys
import redis
client = redis.Redis.from_url(sys.argv[1])
client.echo("kept open")
print("connected", flush=True)
sys.stdin.read()  # until the test process, and so its pipe, ends
'''
KEPT = []


def test_starts_a_process_that_keeps_a_named_client_connected():
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, named_url({url!r})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "connected\\n"
    KEPT.append(process)  # never stopped: its connection stays open, on another port
"""

KEEPS_TWO_UNNAMED = """
import redis

KEPT = []


def test_keeps_two_clients_without_a_name():
    for _ in range(2):
        client = redis.Redis.from_url({url!r})
        client.ping()
        KEPT.append(client)
"""

CLOSES = """
import redis
from tests.support.redis_leaks import named_url


def test_closes_its_client():
    client = redis.Redis.from_url(named_url({url!r}))
    client.ping()
    client.close()


def test_drops_its_client():
    client = redis.Redis.from_url({url!r})
    client.ping()
    del client  # garbage: the guard collects it before counting
"""

CONFTEST = """
from tests.support.redis_leaks import register_redis_leak_guard


def pytest_configure(config):
    register_redis_leak_guard(config, {url!r})
"""


def test_the_guard_fails_the_files_that_leave_connections_open(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    url = redis_test_url()
    pytester.makeconftest(CONFTEST.format(url=url))
    pytester.makepyfile(
        test_a_keeps_one_named=KEEPS_ONE_NAMED.format(url=url),
        test_b_keeps_two_unnamed=KEEPS_TWO_UNNAMED.format(url=url),
        test_c_closes=CLOSES.format(url=url),
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")

    result.assert_outcomes(passed=4, errors=2)
    output = result.stdout.str()
    assert "test_a_keeps_one_named.py left 1 Redis connection open" in output
    assert "name='undersign-tests-" in output  # found by its name alone
    assert "last command echo" in output
    assert "test_b_keeps_two_unnamed.py left 2 Redis connections open" in output
    assert "name=''" in output  # found by their client ports
    assert "test_c_closes.py left" not in output


def test_the_guard_is_loaded_on_runs_with_the_queue_on_redis_only(
    request: pytest.FixtureRequest,
) -> None:
    registered = request.config.pluginmanager.has_plugin("redis-connection-leak-guard")
    assert registered == (os.environ.get("UNDERSIGN_TEST_QUEUE") == "redis")
