"""The README's curl examples of `ghostwrite serve` work as written (issue 13): each `curl` line of the
HTTP API section is run by the shell against a real server, with only the address and the model name
swapped for the test's (a free port, the tiny model)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from apiserver import running  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### The HTTP API", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_readme_curl_examples_work(tiny_model):
    from bot.service import ContinuationService

    commands = curl_commands()
    assert len(commands) >= 4
    with ContinuationService(workers=8) as svc, running(service=svc) as base:
        for cmd in commands:
            cmd = cmd.replace("http://127.0.0.1:8000", base).replace('"shakespeare"', '"tiny"')
            p = subprocess.run(["bash", "-c", cmd + " --fail-with-body"], capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, (cmd, p.stdout, p.stderr)
            if '"stream": true' in cmd:
                assert p.stdout.rstrip().endswith("data: [DONE]")
                continue
            body = json.loads(p.stdout)
            if "/v1/models" in cmd:
                assert "tiny" in [m["id"] for m in body["data"]]
            else:
                assert body["choices"][0]["finish_reason"] == "length" and body["choices"][0]["text"]
                if '"logprobs"' in cmd:
                    assert len(body["choices"][0]["logprobs"]["tokens"]) == 5
