"""The static checks catch what they claim to (SECURITY.md F7, 6.D.40).

Each project-local semgrep rule has a planted sample in tools/semgrep/samples/ that it must
report; the same rules over src/ must report nothing. bandit is run like ``make lint`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
RULES = ROOT / "tools" / "semgrep" / "rules.yml"
SAMPLES = ROOT / "tools" / "semgrep" / "samples"
OFFLINE = {**os.environ, "SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"}


def _semgrep(target: Path) -> list[dict[str, object]]:
    command = [str(BIN / "semgrep"), "scan", "--config", str(RULES), "--metrics=off"]
    command += ["--disable-version-check", "--json", "--quiet", str(target)]
    done = subprocess.run(
        command, cwd=ROOT, env=OFFLINE, capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(done.stdout)
    assert report["errors"] == [], report["errors"]
    return list(report["results"])


def _rule_ids() -> list[str]:
    return [rule["id"] for rule in yaml.safe_load(RULES.read_text())["rules"]]


@pytest.fixture(scope="module")
def sample_findings() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for result in _semgrep(SAMPLES):
        rule = str(result["check_id"]).rsplit(".", 1)[-1]
        found.setdefault(rule, set()).add(Path(str(result["path"])).name)
    return found


@pytest.mark.parametrize("rule", _rule_ids())
def test_each_semgrep_rule_catches_its_planted_sample(
    rule: str, sample_findings: dict[str, set[str]]
) -> None:
    """SECURITY 6.D.40: each local rule finds the bug planted for it (so an empty run on src
    means something)."""
    assert sample_findings.get(rule), f"rule {rule} found nothing in {SAMPLES}"
    assert all(name.startswith("bad_") for name in sample_findings[rule])


def test_semgrep_finds_nothing_in_src() -> None:
    """SECURITY 6.D.40: `non-constant-time-signature-compare` (and every other local rule)
    reports 0 findings on the product code."""
    findings = _semgrep(ROOT / "src")
    assert [
        f"{f['check_id']} {f['path']}:{f['start']['line']}"  # type: ignore[index]
        for f in findings
    ] == []


def test_bandit_reports_nothing_at_medium_severity() -> None:
    """SECURITY F7: bandit -ll over src, with the pyproject exclusions (each with a reason)."""
    done = subprocess.run(
        [str(BIN / "bandit"), "-c", "pyproject.toml", "-r", "src", "-ll", "-f", "json", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stdout)
    assert [f"{r['test_id']} {r['filename']}:{r['line_number']}" for r in report["results"]] == []
    assert report["metrics"]["_totals"]["loc"] > 1000  # it really scanned the code


def test_bandit_still_catches_what_it_is_relied_on_for(tmp_path: Path) -> None:
    """SECURITY F7: bandit, not semgrep alone, is relied on for B113 and B201."""
    (tmp_path / "bad.py").write_text(
        "import requests\nfrom flask import Flask\n"
        "requests.get('http://127.0.0.1/')\nFlask(__name__).run(debug=True)\n"
    )
    done = subprocess.run(
        [str(BIN / "bandit"), "-r", str(tmp_path), "-ll", "-f", "json", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    ids = {r["test_id"] for r in json.loads(done.stdout)["results"]}
    assert {"B113", "B201"} <= ids
