"""Runs every job type a queuemgr host serves as a queued command, with the framework's own
client (mcp-proxy-adapter 8.11.7), waiting over /ws:

    python3 -m venv .venv && .venv/bin/pip install mcp-proxy-adapter==8.11.7
    .venv/bin/python scripts/framework-client-demo.py [URL] [API_KEY]

URL defaults to http://127.0.0.1:8000 (./scripts/serve.sh). Prints one line per job type: the
events the client saw and the job's result, or the error a failing job raised. Exits 1 if a
call ended any other way (a transport error, the polling fallback, a wrong answer).
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

# Params for the example jobs (others run with {}). `failing` and `hostile` fail on purpose;
# `process_data` and `fetch_url` fail unless their manifests grant a directory or a host.
PARAMS: Dict[str, Dict[str, Any]] = {
    "my_job": {"task_name": "demo", "duration": 2},
    "my_job_py": {"task_name": "demo", "duration": 2},
    "cpu_heavy": {"workload": "primes", "below": 200000},
    "primes_py": {"limit": 100000},
    "failing": {"code": "DEMO", "message": "fails on purpose"},
    "hostile": {"mode": "trap"},
    "noop": {},
    "process_data": {"input": "/data/in/sales.csv", "output": "/data/out/summary.json"},
    "fetch_url": {"url": "http://127.0.0.1:9/"},
}


class Fallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "WS_UNREACHABLE_RPC_POLLING_FALLBACK" in record.getMessage():
            self.n += 1


async def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    key = sys.argv[2] if len(sys.argv) > 2 else ""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    fallbacks = Fallbacks()
    logging.getLogger().addHandler(fallbacks)
    kwargs: Dict[str, Any] = {"protocol": "http", "host": host, "port": int(port)}
    headers = {}
    if key:
        kwargs.update(token_header="X-API-Key", token=key)
        headers["X-API-Key"] = key
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{url}/commands") as r:
            commands = (await r.json())["commands"]
    job_types = sorted(n for n, c in commands.items() if c.get("queued"))
    client = JsonRpcClient(**kwargs)
    bad = 0
    try:
        for job_type in job_types:
            events: List[str] = []

            async def hook(msg: Dict[str, Any]) -> None:
                if msg.get("event"):
                    events.append(str(msg["event"]))

            params = PARAMS.get(job_type, {})
            try:
                answer = await client.execute_command_unified(job_type, params, status_hook=hook)
                data = answer["result"]["result"]["data"]
                ok = answer["mode"] == "queued" and answer["status"] == "completed"
                bad += not ok
                print(f"{job_type}: {answer['status']} {json.dumps(data)[:120]} (events: {', '.join(dict.fromkeys(events))})")
            except CommandSessionFailedError as e:
                terminal = (e.details or {}).get("terminal_event", {}) if hasattr(e, "details") else {}
                print(f"{job_type}: raised CommandSessionFailedError: {terminal.get('event')} {terminal.get('error') or terminal.get('data') or ''}")
    finally:
        await client.close()
    if fallbacks.n:
        print(f"the client fell back to polling {fallbacks.n} times")
    return 1 if bad or fallbacks.n else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
