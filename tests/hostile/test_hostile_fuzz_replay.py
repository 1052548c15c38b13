"""The ``make fuzz`` harnesses stay runnable: each target's seeds and a second of mutations
in plain Python (atheris itself runs only in ``make fuzz``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "fuzz"))

import run


@pytest.mark.parametrize("name", ["next", "signature", "markdown", "co_authors"])
def test_fuzz_target_replays_without_failure(name: str) -> None:
    assert run.replay(name, 0.5) > 50
