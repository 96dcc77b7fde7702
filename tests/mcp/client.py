"""An MCP client for queuemgr's tests, on the official Python SDK (`mcp`, pinned by the test).

Usage: client.py BASE_URL API_KEY SCENARIO [MODE]
Prints one JSON object per observation on stdout (the Rust test reads them); a scenario that
needs the test to act prints {"ready": ...} and waits for a line on stdin.

MODE: "auto" (the 2026-07-28 protocol, no sessions) or "legacy" (initialize + a session).
"""

from __future__ import annotations

import json
import sys

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

BASE, KEY, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]
MODE = sys.argv[4] if len(sys.argv) > 4 else "auto"


def say(**kw) -> None:
    print(json.dumps(kw), flush=True)


def client(**kw) -> Client:
    http = create_mcp_http_client(headers={"X-API-Key": KEY})
    return Client(streamable_http_client(f"{BASE}/mcp", http_client=http), mode=MODE, **kw)


def text_of(res) -> list[str]:
    return [c.text for c in res.content if getattr(c, "type", "") == "text"]


async def basic() -> None:
    async with client() as c:
        say(protocol=str(c.protocol_version))
        tools = (await c.list_tools()).tools
        say(tools=[t.name for t in tools],
            my_job_schema=next(t.input_schema for t in tools if t.name == "my_job"))
        progress: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)
            say(progress=p, total=total, message=message)

        res = await c.call_tool("my_job", {"task_name": "from-mcp", "duration": 3},
                                progress_callback=on_progress)
        say(result=res.structured_content, is_error=res.is_error, progress_seen=progress)
        res = await c.call_tool("failing", {"code": "BAD_INPUT", "message": "nope"})
        say(failing_is_error=res.is_error, failing=res.structured_content or text_of(res))
        res = await c.call_tool("queue_add_job", {"job_id": "via-mcp", "job_type": "noop",
                                                   "params": {}, "start": True})
        say(added=res.structured_content, is_error=res.is_error)
        with anyio.fail_after(10):
            while True:
                res = await c.call_tool("queue_get_job_status", {"job_id": "via-mcp"})
                if res.structured_content and res.structured_content.get("status") == "completed":
                    break
                await anyio.sleep(0.05)
        say(status=res.structured_content)
        res = await c.call_tool("queue_get_job_status", {"job_id": "no-such-job"})
        say(missing_is_error=res.is_error, missing=res.structured_content)
        try:
            await c.call_tool("no_such_tool", {})
            say(unknown_tool="accepted")
        except MCPError as e:
            say(unknown_tool=e.code)
        try:
            await c.call_tool("my_job", {"duration": "long"})
            say(bad_params="accepted")
        except MCPError as e:
            say(bad_params=e.code, bad_params_message=str(e))


async def cancel() -> None:
    async with client() as c:
        seen: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            seen.append(p)

        with anyio.move_on_after(2.5) as scope:
            await c.call_tool("my_job", {"task_name": "cancel-me", "duration": 60},
                              progress_callback=on_progress)
        say(cancelled=scope.cancelled_caught, progress_seen=seen)
        # The client is still usable after a cancel.
        res = await c.call_tool("queue_list_job_types", {})
        say(still_alive=not res.is_error)


async def list_changed() -> None:
    got = anyio.Event()
    seen: list[str] = []

    async def handler(msg) -> None:
        seen.append(type(msg).__name__)
        if isinstance(msg, types.ToolListChangedNotification):
            got.set()

    async with client(message_handler=handler) as c:
        before = [t.name for t in (await c.list_tools()).tools]
        if MODE == "legacy":
            await anyio.sleep(0.5)  # the SDK opens its session's GET stream after connecting
            say(ready=True, before=before)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            with anyio.fail_after(20):
                await got.wait()
        else:
            async with c.listen(tools_list_changed=True) as sub:
                say(ready=True, before=before)
                await anyio.to_thread.run_sync(sys.stdin.readline)
                with anyio.fail_after(20):
                    async for event in sub:
                        seen.append(type(event).__name__)
                        break
        after = [t.name for t in (await c.list_tools()).tools]
        say(list_changed=True, seen=seen, after=after)


anyio.run({"basic": basic, "cancel": cancel, "list_changed": list_changed}[SCENARIO])
