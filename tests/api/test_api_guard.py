"""`ghostwrite serve`'s guard (issue 13): keys (401, the caller stored), per-key rate limits and the
concurrency cap's queue (429 with Retry-After), CORS off unless configured, --lenient, the refusal to
serve beyond loopback without keys (one line, exit 2), and the real command with --workers 2 on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
from apiserver import assert_openai_error, running, wait_for  # noqa: E402

KEY = "k" * 24



def test_keys_rate_limit_and_caller(svc):
    from bot.api import ApiConfig

    config = ApiConfig(keys={"ann": KEY, "bob": "b" * 20}, rate_per_minute=2)
    with running(config, svc) as url:
        body = {"model": "tiny", "prompt": "x", "max_tokens": 3}
        assert_openai_error(httpx.post(url + "/v1/completions", json=body), 401, "API key")
        e = assert_openai_error(httpx.post(url + "/v1/completions", json=body,
                                           headers={"Authorization": "Bearer " + "k" * 23 + "x"}), 401, "incorrect")
        assert e["type"] == "authentication_error"
        assert_openai_error(httpx.get(url + "/v1/models"), 401)
        ok = {"Authorization": f"Bearer {KEY}"}
        for _ in range(2):
            assert httpx.post(url + "/v1/completions", json=body, headers=ok, timeout=60).status_code == 200
        r = httpx.post(url + "/v1/completions", json=body, headers=ok, timeout=60)
        err = assert_openai_error(r, 429, "rate limit")
        assert err["type"] == "rate_limit_error" and int(r.headers["retry-after"]) >= 1
        # another key has its own budget; the caller stored is the key's name
        r = httpx.post(url + "/v1/completions", json={**body, "user": "u1"}, timeout=60,
                       headers={"Authorization": "Bearer " + "b" * 20})
        assert r.status_code == 200
        row = svc.generation(r.json()["choices"][0]["generation_id"])
        assert row.user_id == "bob" and row.user_name == "u1" and row.source == "api"
        assert httpx.get(url + "/health").status_code == 200  # (no key needed)


def test_concurrency_cap_answers_429_beyond_the_queue(svc, held):
    from bot.api import ApiConfig

    with running(ApiConfig(max_concurrent=1, max_queue=0), svc) as url:
        body = {"model": "tiny", "prompt": "ROMEO:", "stream": True, "length": 300}
        first_chunk = threading.Event()
        texts = []

        def hold():
            with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as r:
                for line in r.iter_lines():
                    first_chunk.set()
                    if line.startswith("data: {"):
                        texts.append(json.loads(line[6:])["choices"][0]["text"])

        t = threading.Thread(target=hold)
        t.start()
        try:
            assert first_chunk.wait(30)
            r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 2})
            assert_openai_error(r, 429, "busy")
            assert int(r.headers["retry-after"]) >= 1
        finally:
            held.set()
            t.join(30)
        assert len("".join(texts)) == 300  # the held stream went on to its end
        # the slot is free again once the stream has ended
        r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 2}, timeout=60)
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
def test_not_loopback_without_keys_refuses_to_start(host, tmp_path):
    env = {**os.environ, "GHOSTWRITE_API_KEYS": ""}
    p = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--host", host, "--port", "0"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "without API keys" in lines[0], p.stderr


def test_bad_keys_are_one_line(tmp_path):
    bad = tmp_path / "keys"
    bad.write_text("ann:short\n")
    p = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--keys-file", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "shorter than 16" in p.stderr


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_ghostwrite_serve_with_workers(tiny_model, tmp_path, database):
    """The real command: `ghostwrite serve --workers 2` on a free loopback port answers concurrent
    requests, every one stored once (SQLite, and PostgreSQL when reachable), then stops on SIGINT."""
    import contextlib
    import signal

    from apiserver import free_port
    from pgutil import fresh_schema

    with contextlib.ExitStack() as stack:
        env = dict(os.environ)
        if database == "postgres":
            env["GHOSTWRITE_DATABASE_URL"] = stack.enter_context(fresh_schema("gw_api_workers"))
        else:
            env["GHOSTWRITE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'workers.db'}"
        _serve_with_workers(env, free_port(), signal)


def _serve_with_workers(env, port, signal):
    from concurrent.futures import ThreadPoolExecutor

    p = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--workers", "2",
                          "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(url + "/health", timeout=5).status_code == 200
            except httpx.TransportError:
                assert p.poll() is None, p.communicate()
                return False

        wait_for(up, timeout=90)

        def ask(seed):
            r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 8,
                                                          "seed": seed, "user": "w"}, timeout=60)
            assert r.status_code == 200, r.text
            return r.json()["choices"][0]["generation_id"]

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(ask, range(8)))
        assert len(set(ids)) == 8 and all(ids)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
    assert p.returncode in (0, -signal.SIGINT), p.returncode
    from bot.service import ContinuationService
    from bot.store import Store

    store = Store(env["GHOSTWRITE_DATABASE_URL"])
    try:
        with ContinuationService(store=store) as store_svc:
            stored = store_svc.history(source="api", user_id="w", limit=None)
    finally:
        store.close()
    assert sorted(g.id for g in stored) == sorted(ids)


def test_keys_from_the_environment_and_a_file(tmp_path, monkeypatch):
    from bot.api import load_keys
    from bot.service import GhostwriteError

    monkeypatch.setenv("GHOSTWRITE_API_KEYS", f"ann:{KEY}, bob:{'b' * 16}")
    f = tmp_path / "keys"
    f.write_text(f"# team\ncid:{'c' * 30}\n\n", encoding="utf-8")
    assert load_keys(str(f)) == {"ann": KEY, "bob": "b" * 16, "cid": "c" * 30}
    f.write_text(f"ann:{'d' * 20}\n", encoding="utf-8")
    with pytest.raises(GhostwriteError, match="also in GHOSTWRITE_API_KEYS"):
        load_keys(str(f))
    monkeypatch.setenv("GHOSTWRITE_API_KEYS", "justakeywithoutname1234")
    with pytest.raises(GhostwriteError, match="NAME:KEY"):
        load_keys(None)


def test_cors_is_off_unless_configured(svc, base):
    pre = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    r = httpx.options(base + "/v1/completions", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    from bot.api import ApiConfig

    with running(ApiConfig(cors_origins=("https://elsewhere.example",)), svc) as url:
        r = httpx.options(url + "/v1/completions", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://elsewhere.example"
        r = httpx.options(url + "/v1/completions", headers={**pre, "Origin": "https://other.example"})
        assert r.headers.get("access-control-allow-origin") != "https://other.example"


def test_lenient_ignores_fields_it_does_not_know(svc, base):
    from bot.api import ApiConfig

    body = {"model": "tiny", "prompt": "x", "max_tokens": 4, "typical_p": 0.9, "presence_penalty": 0.5,
            "truncation_length": 2048, "temperature": 0.5}
    assert_openai_error(httpx.post(base + "/v1/completions", json=body), 400, "presence_penalty")
    with running(ApiConfig(lenient=True), svc) as url:
        r = httpx.post(url + "/v1/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        row = svc.generation(r.json()["choices"][0]["generation_id"])
        assert row.params["temperature"] == 0.5 and "typical_p" not in row.params
        # the contract's own checks stay
        assert_openai_error(httpx.post(url + "/v1/completions", json={**body, "temperature": 99}), 400,
                            "temperature must be")
