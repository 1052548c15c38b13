"""deploy/nginx.conf.example, installed as docs/deploy.md section 6 says, passes ``nginx -t``
with Debian 12's nginx (installed here when missing and running as root)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bench import nginx_setup, rolling_restart
from tests.support.docs import REPO_ROOT, replace_all, shell_block


def test_the_documented_site_passes_nginx_t_in_debians_layout(tmp_path: Path) -> None:
    nginx = nginx_setup.ensure_nginx()
    etc = nginx_setup.copy_debian_etc(tmp_path)
    chain, key = nginx_setup.self_signed_certificate(tmp_path / "cert")
    site = etc / "conf.d" / "undersign.conf"
    script = replace_all(
        shell_block("deploy.md", "nginx-site"),
        [
            ("HOST=cla.example.org", "HOST=cla.test.invalid"),
            ("sudo ", ""),
            ("/opt/undersign/src/", f"{REPO_ROOT}/"),
            ("/etc/nginx/", f"{etc}/"),
            # What a test machine cannot have (a certificate) or must not touch (/etc/nginx,
            # /var/log/nginx): paths inside the installed site, once the doc's commands ran.
            (
                "nginx -t",
                f'sed -i -e "s|/etc/letsencrypt/live/$HOST/fullchain.pem|{chain}|" '
                f'-e "s|/etc/letsencrypt/live/$HOST/privkey.pem|{key}|" '
                f'-e "s|/var/log/nginx/|{tmp_path}/|" -e "s|/etc/nginx/|{etc}/|" {site} && '
                f"{nginx} -t -c {etc}/nginx.conf -e stderr",
            ),
            ("systemctl reload nginx", "true"),
        ],
    )
    result = subprocess.run(
        ["bash", "-euc", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    installed = site.read_text(encoding="utf-8")
    assert "server_name cla.test.invalid;" in installed
    assert "cla.example.org" not in installed
    assert (etc / "undersign_proxy.conf").read_text() == (
        REPO_ROOT / "deploy" / "undersign_proxy.conf"
    ).read_text()


def test_nginx_t_notices_a_broken_site(tmp_path: Path) -> None:
    """The check above can fail: the example with the 1.25-only directive does not pass."""
    nginx = nginx_setup.ensure_nginx()
    main = nginx_setup.standalone(tmp_path, http_port=8080, https_port=8443, upstreams=(1, 2))
    assert nginx_setup.check_config(nginx, main).returncode == 0
    site = main.parent / "undersign.conf"
    site.write_text(
        site.read_text().replace("client_max_body_size", "http2 on;\n    client_max_body_size")
    )
    broken = nginx_setup.check_config(nginx, main)
    assert broken.returncode != 0
    assert 'unknown directive "http2"' in broken.stderr


@pytest.mark.timeout(300)
def test_the_rolling_restart_probe_runs_and_reports() -> None:
    """bench/rolling_restart.py cannot rot: one round, nginx in front of two real `serve`.
    (Its figure, failed requests, is reported in docs/deploy.md, not asserted here.)"""
    result = rolling_restart.run(rounds=1)
    assert result.requests > 0
    assert {"GET /healthz", "POST /webhooks/github"} <= set(result.sent)
    names = [name for name, _seconds in result.restarts]
    assert len(names) == 2 and len(set(names)) == 2  # each upstream restarted once
    assert "failed" in result.text
