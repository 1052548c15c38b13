"""deploy/nginx.conf.example, made runnable in a folder of its own (tests and the probe).

The example is used as shipped; only what cannot be the same on a test machine is replaced
(ports on loopback, the certificate, the include and log paths), and every replacement must
match, so a changed example fails here instead of silently testing something else. nginx runs
with its own prefix and main config, never the system's.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "deploy" / "nginx.conf.example"
PROXY_INCLUDE = REPO_ROOT / "deploy" / "undersign_proxy.conf"
CERT_DIR = "/etc/letsencrypt/live/cla.example.org/"


class NginxMissing(RuntimeError):
    """nginx is not installed and cannot be installed here (not root)."""


def ensure_nginx() -> str:
    """The nginx binary; installs Debian's nginx when missing and running as root (as
    `make browser` does for chromium)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if found:
        return found
    if os.geteuid() != 0:
        raise NginxMissing("nginx is missing: sudo apt-get install nginx")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx"],
        check=True,
        env=env,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    return shutil.which("nginx") or "/usr/sbin/nginx"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (fullchain.pem, privkey.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cla.example.org")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    chain, private = folder / "fullchain.pem", folder / "privkey.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    return chain, private


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise AssertionError(f"deploy/nginx.conf.example no longer contains {old!r}")
    return text.replace(old, new)


def site_config(
    folder: Path,
    *,
    etc_nginx: Path,
    http_port: int | None = None,
    https_port: int | None = None,
    upstreams: tuple[int, int] | None = None,
) -> str:
    """The example's text with the machine-specific paths (and, if given, ports) replaced;
    the certificate is generated into ``folder``."""
    chain, private = self_signed_certificate(folder / "cert")
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    text = EXAMPLE.read_text(encoding="utf-8")
    text = _replace(text, CERT_DIR + "fullchain.pem", str(chain))
    text = _replace(text, CERT_DIR + "privkey.pem", str(private))
    text = _replace(text, "/var/log/nginx/", f"{folder / 'logs'}/")
    text = _replace(text, "/etc/nginx/", f"{etc_nginx}/")
    if http_port is not None:
        text = _replace(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
        text = _replace(text, "listen [::]:80;", "")
    if https_port is not None:
        text = _replace(text, "listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
        text = _replace(text, "listen [::]:443 ssl http2;", "")
    if upstreams is not None:
        text = _replace(text, "server 127.0.0.1:8000 ", f"server 127.0.0.1:{upstreams[0]} ")
        text = _replace(text, "server 127.0.0.1:8001 ", f"server 127.0.0.1:{upstreams[1]} ")
    return text


def copy_debian_etc(folder: Path) -> Path:
    """A copy of Debian's /etc/nginx whose nginx.conf includes from the copy (for ``nginx -t``
    on a site installed the way docs/deploy.md says, without touching the real one)."""
    etc = folder / "etc-nginx"
    shutil.copytree("/etc/nginx", etc, symlinks=True)
    main = etc / "nginx.conf"
    main.write_text(main.read_text(encoding="utf-8").replace("/etc/nginx/", f"{etc}/"))
    return etc


def standalone(
    folder: Path, *, http_port: int, https_port: int, upstreams: tuple[int, int]
) -> Path:
    """A minimal main config of our own around the example (for running nginx, not the
    system's): loopback ports, every path inside ``folder``; returns its path."""
    etc = folder / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROXY_INCLUDE, etc / "undersign_proxy.conf")
    site = etc / "undersign.conf"
    site.write_text(
        site_config(
            folder, etc_nginx=etc, http_port=http_port, https_port=https_port, upstreams=upstreams
        )
    )
    temp = folder / "temp"
    temp.mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers can reach this folder
    main = etc / "nginx.conf"
    main.write_text(
        f"{user}worker_processes 1;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'logs' / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n"
        f"  scgi_temp_path {temp}/scgi;\n"
        f"  include {site};\n"
        "}\n"
    )
    return main


def check_config(
    nginx: str, main: Path, *, own_prefix: bool = True
) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``main``, errors to stderr. ``own_prefix``: relative paths resolve in
    its folder (False for the Debian layout, whose module paths are relative to nginx's
    compiled-in prefix)."""
    prefix = ["-p", f"{main.parent}/"] if own_prefix else []
    return subprocess.run(
        [nginx, "-t", *prefix, "-c", str(main), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
