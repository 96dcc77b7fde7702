#!/usr/bin/env python3
"""The ORIGINAL Python stack (mcp-proxy-adapter 8.11.7 + queuemgr 1.0.25) for benchmarks.

Serves, on 127.0.0.1:<port>, plain HTTP, no auth, no TLS, no proxy registration:
an mcp-proxy-adapter app built with the framework's own factory
(``mcp_proxy_adapter.api.app.create_app``) and served by its own engine
(``ServerEngineFactory.get_engine("hypercorn").run_server``), exactly as
``examples/full_application/main.py`` does. The app's queuemgr integration is
on (``queue_manager.enabled``, in memory) and ``/ws`` with job push is on (the
framework registers ``/ws`` unconditionally and starts job push in its
lifespan; the ``job_push`` section is given empty, as the shipped configs do).

Two custom commands, both ``use_queue = True`` (so they run in a queuemgr
spawn-mode worker process, never in the server process):

* ``noop``: no parameters, returns at once ``SuccessResult(data={"ok": True})``.
* ``my_job``: ``task_name`` (string, required), ``duration`` (integer seconds,
  default 0); reports progress through ``context["progress_tracker"]`` once a
  second and returns ``{"task_name": ..., "duration": ...}``.

This file doubles as the worker's auto-import module (registered with
``register_auto_import_module``): importing it registers the two commands, so
a fresh spawn-mode worker interpreter can resolve them by name.

Usage::

    python tests/original/server.py --port 18080     # or: server.py 18080
    ORIGINAL_PORT=18080 python tests/original/server.py

Prints exactly one line ``listening http://127.0.0.1:<port>`` on stdout once
``GET /health`` answers 200; everything else goes to stderr. Stops on SIGTERM
or SIGINT (the engine's own handlers run the app's shutdown, which stops the
queue manager and its workers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
import urllib.request
from typing import Any, Dict

from mcp_proxy_adapter.commands.base import Command
from mcp_proxy_adapter.commands.result import SuccessResult

MODULE_NAME = os.path.splitext(os.path.basename(os.path.abspath(__file__)))[0]
MODULE_DIR = os.path.dirname(os.path.abspath(__file__))


class NoopCommand(Command):
    """Queued command that does nothing and succeeds at once."""

    name = "noop"
    descr = "benchmark probe: queued no-op, returns {'ok': true}"
    use_queue = True

    async def execute(self, **kwargs: Any) -> SuccessResult:
        """Return the fixed success payload."""
        return SuccessResult(data={"ok": True})

    @classmethod
    def get_schema(cls) -> Dict[str, Any]:
        """No parameters."""
        return {"type": "object", "properties": {}, "additionalProperties": False}


class MyJobCommand(Command):
    """Queued command that runs ``duration`` seconds, reporting progress."""

    name = "my_job"
    descr = "benchmark probe: queued job that sleeps duration seconds with progress"
    use_queue = True

    async def execute(
        self, task_name: str = "", duration: int = 0, **kwargs: Any
    ) -> SuccessResult:
        """Sleep ``duration`` seconds in one-second steps, reporting progress."""
        context = kwargs.get("context") or {}
        tracker = context.get("progress_tracker") if isinstance(context, dict) else None
        total = max(0, int(duration or 0))
        for second in range(total):
            if tracker is not None:
                tracker.set_progress(int(second * 100 / total))
                tracker.set_description(f"{task_name}: {second}/{total} s")
            await asyncio.sleep(1.0)
        if tracker is not None:
            tracker.set_progress(100)
            tracker.set_description(f"{task_name}: done")
        return SuccessResult(data={"task_name": task_name, "duration": total})

    @classmethod
    def get_schema(cls) -> Dict[str, Any]:
        """``task_name`` required string, ``duration`` integer seconds >= 0."""
        return {
            "type": "object",
            "properties": {
                "task_name": {"type": "string"},
                "duration": {"type": "integer", "minimum": 0, "default": 0},
            },
            "required": ["task_name"],
            "additionalProperties": False,
        }


def register_bench_commands() -> None:
    """Idempotently register both commands (server process and worker alike)."""
    from mcp_proxy_adapter.commands.command_registry import registry

    for command_cls in (NoopCommand, MyJobCommand):
        if not registry.command_exists(command_cls.name):
            registry.register(command_cls, "custom")


# Module-level registration: this is what makes the commands exist inside a
# spawn-mode queuemgr worker, which imports this module by name.
register_bench_commands()


def build_config(port: int) -> Dict[str, Any]:
    """Plain-HTTP loopback config: no registration, no auth, queue and /ws on."""
    return {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "debug": False,
            "log_level": "WARNING",
        },
        "registration": {"enabled": False},
        "auth": {"use_token": False, "use_roles": False},  # nosec B105 - flags
        "security": {"enabled": False},
        "roles": {"enabled": False},
        "queue_manager": {
            "enabled": True,
            "in_memory": True,
            "registry_path": None,
            "shutdown_timeout": 30,
            "max_concurrent_jobs": 10,
            "max_queue_size": None,
            "per_job_type_limits": None,
            "completed_job_retention_seconds": 21600,
            "max_retained_terminal_jobs": None,
        },
        "job_push": {},
    }


def _announce_when_healthy(port: int, deadline_s: float = 120.0) -> None:
    """Print ``listening <url>`` once ``GET /health`` answers 200 (thread body)."""
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2.0) as resp:  # nosec B310
                if resp.status == 200:
                    sys.stdout.write(f"listening {url}\n")
                    sys.stdout.flush()
                    return
        except Exception:  # nosec B110 - readiness poll, retried until the deadline
            pass
        time.sleep(0.1)
    sys.stderr.write(f"server.py: /health did not answer 200 within {deadline_s}s\n")


def main() -> None:
    """Build the app with the framework's factory and serve it with its engine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port_pos", nargs="?", type=int, help="port (positional)")
    parser.add_argument("--port", type=int, help="port (default: $ORIGINAL_PORT)")
    args = parser.parse_args()
    port = args.port or args.port_pos or int(os.environ.get("ORIGINAL_PORT", "0") or 0)
    if not port:
        parser.error("a port is needed: --port N, a positional N, or ORIGINAL_PORT")

    # The worker imports MODULE_NAME; make its directory importable there too
    # (PYTHONPATH is inherited by spawn-mode children).
    if MODULE_DIR not in sys.path:
        sys.path.insert(0, MODULE_DIR)
    pythonpath = os.environ.get("PYTHONPATH", "")
    if MODULE_DIR not in pythonpath.split(os.pathsep):
        os.environ["PYTHONPATH"] = MODULE_DIR + (os.pathsep + pythonpath if pythonpath else "")

    from mcp_proxy_adapter.api.app import create_app
    from mcp_proxy_adapter.commands.hooks import register_auto_import_module
    from mcp_proxy_adapter.core.server_engine import ServerEngineFactory

    register_bench_commands()
    register_auto_import_module(MODULE_NAME)
    app = create_app(
        title="queuemgr original (bench)",
        description="mcp-proxy-adapter 8.11.7 + queuemgr 1.0.25, bench commands noop/my_job",
        version="8.11.7",
        app_config=build_config(port),
    )

    engine = ServerEngineFactory.get_engine("hypercorn")
    if engine is None:
        raise SystemExit("server.py: the framework's hypercorn engine is not available")
    threading.Thread(target=_announce_when_healthy, args=(port,), daemon=True).start()
    engine.run_server(app, {"host": "127.0.0.1", "port": port, "log_level": "warning"})


if __name__ == "__main__":
    main()
