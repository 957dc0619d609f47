"""deploy/ for the HTTP API (issue 13): compose's `api` service and the systemd sibling unit run
`ghostwrite serve`, beyond loopback only with keys from the environment, published on loopback for
a TLS proxy. Static checks (no container engine); the unit goes through `systemd-analyze verify`."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from test_deploy import COMPOSE, DEPLOY, compose, env_example

API_UNIT = DEPLOY / "ghostwrite-api.service"


def test_compose_api_serves_with_keys_from_env():
    services = compose()["services"]
    api, bot = services["api"], services["bot"]
    command = api["command"]
    assert command[:2] == ["ghostwrite", "serve"] and "--host" in command and "--workers" in command
    assert api["environment"]["GHOSTWRITE_API_KEYS"].startswith("${GHOSTWRITE_API_KEYS")
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert api["image"] == bot["image"] and api["build"] == bot["build"]
    assert api["environment"]["GHOSTWRITE_DATABASE_URL"] == bot["environment"]["GHOSTWRITE_DATABASE_URL"]
    assert all(str(p).startswith("127.0.0.1:") for p in api["ports"]), "publish the API on loopback only"
    assert env_example()["GHOSTWRITE_API_KEYS"][0] == ""
    assert "api:" in COMPOSE.read_text(encoding="utf-8")


def _service_section() -> dict[str, str]:
    out, inside = {}, False
    for line in API_UNIT.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if s.startswith("["):
            inside = s == "[Service]"
        elif inside and s and not s.startswith("#"):
            k, _, v = s.partition("=")
            out[k] = v
    return out


def test_api_unit_is_the_bots_sibling():
    service = _service_section()
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "ghostwrite" and argv[1] == "serve"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert service["User"] == "ghostwrite" and service["NoNewPrivileges"] == "yes"
    assert service["EnvironmentFile"] == "/etc/ghostwrite/ghostwrite.env"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_api_unit_passes_systemd_analyze_verify(tmp_path):
    fake = tmp_path / "bin" / "ghostwrite"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    real = shlex.split(_service_section()["ExecStart"])[0]
    unit = tmp_path / API_UNIT.name
    unit.write_text(API_UNIT.read_text(encoding="utf-8").replace(real, str(fake)), encoding="utf-8")
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and API_UNIT.name not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
