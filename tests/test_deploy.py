"""deploy/: what can be checked without a container engine or systemd running.

Fast, no network. The compose file is parsed with PyYAML (skipped with a reason when it is missing);
the unit file goes through `systemd-analyze verify` when that tool exists, and through a small parser
always.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "ghostwrite-bot.service"

BOT_COMMAND = ["ghostwrite", "bot"]
HEALTH_COMMAND = ["ghostwrite", "health"]
SECRET_KEY = re.compile(r"TOKEN|PASSWORD|SECRET|API_KEY", re.I)
# Discord bot token: base64(user id) . timestamp . HMAC
DISCORD_TOKEN_SHAPE = re.compile(r"\b[MNO][A-Za-z\d_-]{23,27}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,40}\b")
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@]+)@")
PLACEHOLDER = re.compile(r"^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|<[^<>]+>)$")


# --- helpers -------------------------------------------------------------------------------------

def compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (add pyyaml to the dev extra)")
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and "services" in data
    return data


def compose_variables() -> set[str]:
    text = COMPOSE.read_text(encoding="utf-8").replace("$$", "")
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\$[A-Za-z_]", text), "use ${VAR}, not $VAR, in compose.yaml"
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def env_example() -> dict[str, tuple[str, list[str]]]:
    """VAR -> (value, comment lines directly above it)."""
    out: dict[str, tuple[str, list[str]]] = {}
    comments: list[str] = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if not s:
            comments = []
        elif s.startswith("#"):
            comments.append(s.lstrip("# "))
        else:
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", s)
            assert m, f".env.example: not VAR=value: {line!r}"
            assert m.group(1) not in out, f".env.example: {m.group(1)} twice"
            out[m.group(1)] = (m.group(2), comments)
            comments = []
    return out


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Stages as lists of (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    logical: list[str] = []
    buf = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            logical.append(buf.strip())
        buf = ""
    stages: list[list[tuple[str, str]]] = []
    for entry in logical:
        word, _, rest = entry.partition(" ")
        word = word.upper()
        if word == "FROM":
            stages.append([])
        elif not stages:
            continue  # global ARGs before the first FROM
        stages[-1].append((word, rest.strip()))
    return stages


def exec_form(args: str, what: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"{what} should use the exec (JSON) form so signals reach ghostwrite: {args!r}")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def unit_sections() -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            current = sections.setdefault(s.strip("[]"), [])
            continue
        key, eq, value = s.partition("=")
        assert eq and current is not None, f"unit file: bad line {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_value(section: list[tuple[str, str]], key: str) -> str | None:
    values = [v for k, v in section if k == key]
    return values[-1] if values else None


# --- compose -------------------------------------------------------------------------------------

def test_compose_parses_with_bot_and_postgres():
    data = compose()
    services = data["services"]
    assert set(services) >= {"bot", "db"}
    db = services["db"]
    assert str(db["image"]).startswith("postgres:16")
    assert "healthcheck" in db and db["healthcheck"]["test"]
    named = set(data.get("volumes") or {})
    db_volumes = [str(v).split(":")[0] for v in db.get("volumes", [])]
    assert any(v in named for v in db_volumes), "PostgreSQL data must be on a named volume"
    assert "ports" not in db, "the database should not be published"


def test_compose_bot_runs_ghostwrite_bot_after_healthy_db():
    bot = compose()["services"]["bot"]
    command = bot["command"]
    assert (shlex.split(command) if isinstance(command, str) else command) == BOT_COMMAND
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    build = bot["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert (DOCKERFILE.parent / (DOCKERFILE.name + ".dockerignore")).is_file()
    env = bot["environment"]
    assert env["GHOSTWRITE_HOME"] == "/data"
    assert any(str(v).split(":")[1] == "/data" for v in bot["volumes"])
    assert str(env["GHOSTWRITE_DATABASE_URL"]).startswith("postgresql+psycopg://")
    assert "@db:" in str(env["GHOSTWRITE_DATABASE_URL"])


def test_compose_variables_are_documented_in_env_example():
    used = compose_variables()
    documented = env_example()
    assert used, "compose.yaml should take its configuration from .env"
    assert not used - set(documented), f"not in .env.example: {sorted(used - set(documented))}"
    assert not set(documented) - used, f"documented but unused: {sorted(set(documented) - used)}"
    for name, (_, comments) in documented.items():
        assert comments, f".env.example: {name} has no comment above it"


def test_compose_takes_secrets_only_from_env():
    data = compose()
    for name, service in data["services"].items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key, value in env.items():
            value = "" if value is None else str(value)
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}", value), (
                    f"{name}.{key} must come from .env, not be written in compose.yaml")
            for password in URL_PASSWORD.findall(value):
                assert PLACEHOLDER.match(password), f"{name}.{key}: password written into the URL"
    assert {"DISCORD_TOKEN", "POSTGRES_PASSWORD"} <= compose_variables()


def test_env_example_holds_no_secret_values():
    for name, (value, _) in env_example().items():
        if SECRET_KEY.search(name):
            assert value == "", f".env.example: {name} must be empty"


# --- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_runs_ghostwrite_bot_as_non_root_with_healthcheck():
    stages = dockerfile_stages()
    assert stages
    final = stages[-1]
    instr = {}
    for word, args in final:
        instr.setdefault(word, []).append(args)
    entrypoint = exec_form(instr["ENTRYPOINT"][-1], "ENTRYPOINT") if "ENTRYPOINT" in instr else []
    cmd = exec_form(instr["CMD"][-1], "CMD") if "CMD" in instr else []
    assert entrypoint + cmd == BOT_COMMAND

    health = instr["HEALTHCHECK"][-1]
    m = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(.+)", health)
    assert m, f"HEALTHCHECK: {health!r}"
    assert exec_form(m.group(2), "HEALTHCHECK") == HEALTH_COMMAND

    user = instr["USER"][-1].split(":")[0]
    assert user not in {"root", "0"}, "the image must run as a non-root user"
    assert [w for w, _ in final].index("USER") < [w for w, _ in final].index("CMD")

    assert any("/data" in v for v in instr["VOLUME"])
    assert any(re.search(r"\bGHOSTWRITE_HOME=/data\b", v) for v in instr["ENV"])


def test_dockerfile_is_python311_slim_cpu_by_default_cuda_by_arg():
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert all(args.split()[0] in {"${PYTHON_IMAGE}", "python:3.11-slim"}
               for args in re.findall(r"^FROM\s+(.+)$", text, re.M))
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.M)
    assert "https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"^\s*cuda\)", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)


def test_console_script_and_subcommands_exist():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "ghostwrite" in scripts
    exe = Path(sys.executable).with_name("ghostwrite")
    if not exe.exists() or importlib.util.find_spec("bot.cli") is None:
        pytest.skip("ghostwrite is not installed in this environment (pip install -e .)")
    for sub in (BOT_COMMAND[1], HEALTH_COMMAND[1]):
        proc = subprocess.run([str(exe), sub, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"`ghostwrite {sub} --help` failed:\n{proc.stdout}{proc.stderr}"


# --- systemd -------------------------------------------------------------------------------------

def test_unit_fields():
    sections = unit_sections()
    service, install = sections["Service"], sections["Install"]
    user = unit_value(service, "User")
    assert user and user not in {"root", "0"}
    assert unit_value(service, "DynamicUser") in (None, "no")
    assert unit_value(service, "EnvironmentFile")
    assert unit_value(service, "Restart") == "on-failure"
    assert unit_value(service, "NoNewPrivileges") == "yes"
    assert unit_value(service, "ProtectSystem") == "strict"
    exec_start = shlex.split(unit_value(service, "ExecStart"))
    assert Path(exec_start[0]).name == "ghostwrite" and exec_start[1:] == BOT_COMMAND[1:]
    env = dict(v.split("=", 1) for k, v in service if k == "Environment")
    home = env["GHOSTWRITE_HOME"]
    assert unit_value(service, "WorkingDirectory") == home
    assert home in unit_value(service, "ReadWritePaths").split()
    assert not any(SECRET_KEY.search(name) for name in env), "secrets belong in the EnvironmentFile"
    assert unit_value(install, "WantedBy") == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart's binary exists; point it at a stand-in with the same name.
    fake = tmp_path / "bin" / "ghostwrite"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    real = shlex.split(unit_value(unit_sections()["Service"], "ExecStart"))[0]
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(real, str(fake)), encoding="utf-8")
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    about_unit = [l for l in (proc.stdout + proc.stderr).splitlines() if UNIT.name in l]
    assert proc.returncode == 0 and not about_unit, proc.stdout + proc.stderr


# --- secrets -------------------------------------------------------------------------------------

def test_env_file_is_ignored_and_not_committed():
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    assert not [p for p in tracked if Path(p).name == ".env"]


def test_no_secret_values_in_deploy_or_committed_files():
    files = {p for p in DEPLOY.rglob("*") if p.is_file()}
    if shutil.which("git") and (ROOT / ".git").exists():
        tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                 check=True).stdout.decode().split("\0")
        files |= {ROOT / p for p in tracked if p and (ROOT / p).is_file()}
    for path in sorted(files):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        assert not DISCORD_TOKEN_SHAPE.search(text), f"{path}: looks like a Discord token"
        if path.is_relative_to(DEPLOY):
            for password in URL_PASSWORD.findall(text):
                assert PLACEHOLDER.match(password), f"{path}: password written into a URL"
