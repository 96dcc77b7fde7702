"""The framework's own client (mcp-proxy-adapter 8.11.7, from PyPI) against a queuemgr host.

    python client.py URL API_KEY SCENARIO

Prints one JSON line with what the scenario saw; the Rust test (tests/all/framework_client.rs)
asserts on it. Scenarios:

- ``unified:<command>:<params JSON>``: ``execute_command_unified`` with a ``status_hook``;
  prints the answer, the events the hook saw, the client's fallback warnings and the /ws
  connections it opened.
- ``detach:<command>:<params JSON>``: the same with ``auto_poll=False``.
- ``failing``: a job that fails; prints the exception the client raised.
- ``stopped``: a job stopped by ``queue_stop_job`` while the client waits; prints the
  exception the client raised.
- ``fallback:<command>:<params JSON>``: ``/ws`` unreachable (the client's ws_url points at a
  closed port); prints the same as ``unified``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any, Dict, List

import aiohttp
from mcp_proxy_adapter.client.jsonrpc_client import JsonRpcClient
from mcp_proxy_adapter.client.jsonrpc_client.exceptions import CommandSessionFailedError

FALLBACK = "WS_UNREACHABLE_RPC_POLLING_FALLBACK"


class Counter(logging.Handler):
    """Counts log records that mention the fallback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        if FALLBACK in record.getMessage():
            self.n += 1


class Unreachable(JsonRpcClient):
    """A client whose /ws is a closed loopback port."""

    @property
    def ws_url(self) -> str:  # type: ignore[override]
        return "ws://127.0.0.1:9/ws"


def jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


async def main() -> None:
    url, key, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = url.replace("http://", "").rsplit(":", 1)
    counter = Counter()
    logging.getLogger().addHandler(counter)
    logging.getLogger().setLevel(logging.WARNING)
    connects = {"n": 0}
    real_connect = aiohttp.ClientSession.ws_connect

    async def spy(self: Any, *a: Any, **kw: Any) -> Any:
        connects["n"] += 1
        return await real_connect(self, *a, **kw)

    aiohttp.ClientSession.ws_connect = spy  # type: ignore[method-assign]
    kind, _, rest = scenario.partition(":")
    command, _, params = rest.partition(":")
    params_obj: Dict[str, Any] = json.loads(params) if params else {}
    cls = Unreachable if kind == "fallback" else JsonRpcClient
    kwargs: Dict[str, Any] = {"protocol": "http", "host": host, "port": int(port)}
    if key:
        kwargs.update(token_header="X-API-Key", token=key)
    client = cls(**kwargs)
    events: List[Dict[str, Any]] = []
    out: Dict[str, Any] = {}

    async def hook(msg: Dict[str, Any]) -> None:
        events.append(msg)
        # `stopped`: once the job runs, someone else stops it.
        if kind == "stopped" and msg.get("event") == "command_progress" and not out.get("stop"):
            out["stop"] = True
            stop = await client.jsonrpc_call("queue_stop_job", {"job_id": msg["job_id"]})
            out["stop_answer"] = stop

    try:
        if kind in ("unified", "fallback"):
            answer = await client.execute_command_unified(
                command, params_obj, status_hook=hook, terminal_poll_interval=0.2
            )
            out["answer"] = answer
        elif kind == "detach":
            answer = await client.execute_command_unified(
                command, params_obj, status_hook=hook, auto_poll=False
            )
            out["answer"] = answer
        elif kind == "failing":
            try:
                await client.execute_command_unified(
                    "failing", {"code": "BOOM", "message": "it broke"}, status_hook=hook
                )
                out["raised"] = None
            except CommandSessionFailedError as e:
                out["raised"] = type(e).__name__
                out["details"] = getattr(e, "details", None)
        elif kind == "stopped":
            try:
                await client.execute_command_unified(
                    "my_job", {"duration": 30}, status_hook=hook
                )
                out["raised"] = None
            except CommandSessionFailedError as e:
                out["raised"] = type(e).__name__
                out["details"] = getattr(e, "details", None)
        else:
            raise SystemExit(f"unknown scenario {scenario}")
    finally:
        await client.close()
    out["events"] = events
    out["fallback_warnings"] = counter.n
    out["ws_connects"] = connects["n"]
    print(json.dumps(jsonable(out)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
