"""Every benchmark and the load test, in their quick mode (seconds), so bench/ cannot rot.

They run the real path (``undersign db upgrade``, ``undersign serve`` under gunicorn,
``undersign worker``, the emulator over loopback); nothing here asserts performance, only
that each run completes and reports what it measured.
"""

from __future__ import annotations

import pytest
from bench.benchmarks import BENCHMARKS, Options
from bench.load import LoadOptions, run_load


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_in_quick_mode(name: str) -> None:
    result = BENCHMARKS[name](Options(quick=True))
    assert result.name == name
    assert result.headline, "a benchmark reports at least one figure"
    for figure, value, _goal in result.headline:
        assert figure and value != "", figure
    assert "| " in result.text  # its tables


@pytest.mark.timeout(240)
def test_load_test_runs_and_loses_nothing() -> None:
    report = run_load(LoadOptions(rate=10, seconds=1.5, users=4, users_seconds=1.5, prs=4))
    assert "load test: PASS" in report.text, report.text
    assert report.ok
    assert report.stack is None  # closed


def test_the_cli_refuses_an_unknown_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["nonsense"])
    assert exited.value.code == 2
    assert "unknown benchmark" in capsys.readouterr().err
