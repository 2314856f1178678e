"""`make run`'s process supervisor: web server, Celery worker and beat on the embedded
default (SQLite + embedded Redis), URLs printed, and one Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.servers import free_port

BASE_DIR = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def test_make_run_serves_the_admin_runs_worker_and_beat_and_ctrl_c_stops_all(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env["OMNICHANNEL_VAR_DIR"] = str(tmp_path / "var")
    env["PYTHONUNBUFFERED"] = "1"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], env=env, cwd=BASE_DIR, check=True, timeout=120
    )
    port = free_port()
    log = open(tmp_path / "devrun.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "omnichannel.devrun", "--port", str(port)],
        env=env,
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # like a terminal: Ctrl-C reaches the whole process group
    )
    try:

        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    return json.loads(response.read())
            except OSError:
                return None

        assert wait_for(healthy, 60, "the web server") == {"status": "ok", "database": "ok", "redis": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=5) as response:
            assert response.status == 200
        output = wait_for(
            lambda: "Redis:" in Path(log.name).read_text() and Path(log.name).read_text(), 30, "the banner"
        )
        for path in ("/admin/", "/agent/", "/widget/demo-live/demo/", "/widget/demo-persistent/demo/"):
            assert f"http://127.0.0.1:{port}{path}" in output
        redis_url = next(line.split()[-1] for line in output.splitlines() if "Redis:" in line)

        # The Celery worker answers through the embedded Redis broker.
        worker_env = {**env, "REDIS_URL": redis_url}

        def worker_pongs():
            result = subprocess.run(
                [sys.executable, "-m", "celery", "-A", "omnichannel", "inspect", "ping", "--timeout", "3"],
                env=worker_env,
                cwd=BASE_DIR,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return "pong" in result.stdout

        wait_for(worker_pongs, 60, "the Celery worker")
        children = psutil.Process(process.pid).children(recursive=True)
        commands = [" ".join(child.cmdline()) for child in children if child.is_running()]
        assert any(" beat" in command for command in commands), commands
        import redis

        assert redis.Redis.from_url(redis_url).ping()

        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert process.wait(timeout=45) == 0
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
        with pytest.raises(redis.ConnectionError):  # the embedded Redis stopped last
            redis.Redis.from_url(redis_url).ping()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_gives_the_demo_data_the_address_the_server_listens_on(tmp_path):
    """seed_demo prints the URLs and stores the widgets' allowed origins: for PORT=9001 they
    must say 9001, as devrun's banner does."""
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "calls.log"
    (fake / "python").write_text(f'#!/bin/sh\necho "SITE_URL=$SITE_URL PORT=$PORT $*" >> {log}\n')
    (fake / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in {"SITE_URL", "HOST", "PORT", "MAKEFLAGS"}}
    subprocess.run(
        ["make", "--no-print-directory", "-o", "install", "run", f"BIN={fake}"],
        cwd=BASE_DIR,
        env={**env, "PORT": "9001"},
        check=True,
        timeout=60,
        capture_output=True,
    )
    calls = log.read_text().splitlines()
    assert [call.split()[-1] for call in calls] == ["--no-input", "seed_demo", "omnichannel.devrun"]
    assert calls[1].startswith("SITE_URL=http://127.0.0.1:9001 ")
    assert "PORT=9001" in calls[2]
