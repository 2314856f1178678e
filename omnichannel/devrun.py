"""``make run``: the whole embedded setup in one command.

Starts the embedded Redis server (unless ``REDIS_URL`` is set), then the ASGI server,
a Celery worker and Celery beat as child processes sharing that Redis, prints the
URLs, and on Ctrl-C (or when any child dies) stops the children and then Redis.

Run as ``python -m omnichannel.devrun [--host H] [--port P]`` after migrate/seed_demo.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from omnichannel.limits import uvicorn_args

BASE_DIR = Path(__file__).resolve().parent.parent


def web_command(host: str, port: int) -> list[str]:
    """The ASGI server of ``make run``, with the WebSocket limits of omnichannel.limits."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "omnichannel.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--ws-ping-interval",
        "20",
        *uvicorn_args(),
        "--lifespan",
        "off",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("SITE_URL", f"http://{args.host}:{args.port}")
    redis_server = None
    if not env.get("REDIS_URL"):
        from omnichannel import embedded_redis

        var_dir = Path(env.get("OMNICHANNEL_VAR_DIR", BASE_DIR / "var"))
        redis_server = embedded_redis.start(var_dir / "redis" / "redis.db")
        env["REDIS_URL"] = embedded_redis.socket_url(redis_server)

    python = sys.executable
    commands = {
        "web": web_command(args.host, args.port),
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "omnichannel",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "--hostname",
            "worker@%h",
        ],
        "beat": [python, "-m", "celery", "-A", "omnichannel", "beat", "--loglevel", "INFO"],
    }
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    exit_code = 0
    try:
        for name, command in commands.items():
            children[name] = subprocess.Popen(command, cwd=BASE_DIR, env=env)
        time.sleep(1.5)
        base = env["SITE_URL"]
        print(
            "\n"
            "  Omnichannel is running (Ctrl-C stops everything):\n"
            f"    Admin:                  {base}/admin/\n"
            f"    Agent inbox:            {base}/agent/  (sign in as agent1 or agent2)\n"
            f"    Supervisor view:        {base}/agent/supervisor/  (sign in as admin)\n"
            f"    Live chat widget:       {base}/widget/demo-live/demo/\n"
            f"    Persistent chat widget: {base}/widget/demo-persistent/demo/\n"
            f"    Redis:                  {env['REDIS_URL']}\n"
            "  Logins: printed by seed_demo above (var/demo/credentials.json).\n",
            flush=True,
        )
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with code {child.returncode}; stopping.", file=sys.stderr)
                    exit_code = child.returncode or 1
                    stopping = True
                    break
            time.sleep(0.5)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if redis_server is not None:
            redis_server.shutdown()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
