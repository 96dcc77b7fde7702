#!/usr/bin/env python3
"""Latency of one queued command as seen by mcp-proxy-adapter's own client.

Runs ``await JsonRpcClient.execute_command_unified(command, params)``
sequentially: ``--warmup`` calls first (not timed), then ``--n`` timed calls,
each timed with ``time.perf_counter`` around the whole call (for a queued
command: open or reuse the ``/ws`` socket, ``execute_command``, wait for the
terminal event, fetch the result with one ``queue_get_job_status``).

Prints ONE JSON line on stdout::

    {"command", "n", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms",
     "fallback_warnings", "session_fallbacks", "ws_connections_opened",
     "mode", "sample_result"}

* ``fallback_warnings``: log records containing
  ``WS_UNREACHABLE_RPC_POLLING_FALLBACK`` (a ``logging.Handler`` on the root
  logger), i.e. calls that waited by RPC polling because ``/ws`` was unusable.
* ``session_fallbacks``: calls whose ``/ws`` command session could not be
  opened (the client's DEBUG "command session unavailable" record), so that
  they took the legacy JSON-RPC ``execute_command`` path instead (which may
  still wait over ``/ws``). 0 for both means every call went over ``/ws``.
* ``ws_connections_opened``: ``aiohttp.ClientSession.ws_connect`` calls
  during warm-up and the timed calls (the client reuses an idle socket).
* ``mode`` / ``sample_result``: ``mode`` and ``result`` of the last answer.

With ``--trace FILE`` one more call (not timed, after the timed ones) records
every ``/ws`` frame the client sent and every inbound message passed to the
``status_hook`` argument, plus the raw ``queue_get_job_status`` answer for
that job, and writes them as JSON to FILE.

Exits non-zero (after printing the error to stderr) if any call raises.

    python tests/original/bench_unified.py --url http://127.0.0.1:18080 \\
        --command noop --params '{}' --n 200 --warmup 20 [--api-key KEY] [--trace F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
import traceback
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

FALLBACK_MARKER = "WS_UNREACHABLE_RPC_POLLING_FALLBACK"
SESSION_FALLBACK_MARKER = "command session unavailable"
COMMAND_API_LOGGER = "mcp_proxy_adapter.client.jsonrpc_client.command_api"


class _MarkerCounter(logging.Handler):
    """Counts log records whose message contains ``marker``."""

    def __init__(self, marker: str, level: int) -> None:
        super().__init__(level)
        self.marker = marker
        self.count = 0
        self.samples: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is not a marker
            return
        if self.marker in text:
            self.count += 1
            if len(self.samples) < 3:
                self.samples.append(text[:300])


def percentile(sorted_ms: List[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0-100) of an ascending list."""
    if not sorted_ms:
        return float("nan")
    pos = (len(sorted_ms) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (pos - lo)


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON (non-JSON values become strings)."""
    return json.loads(json.dumps(value, default=str))


async def _traced_call(
    client: Any, command: str, params: Dict[str, Any]
) -> Dict[str, Any]:
    """One more (untimed) call recording the /ws exchange and the job status."""
    from mcp_proxy_adapter.client.jsonrpc_client import ws_job_status

    frames: List[Dict[str, Any]] = []
    t0 = time.perf_counter()

    def stamp() -> float:
        return round((time.perf_counter() - t0) * 1000.0, 3)

    original_send = ws_job_status.BidirectionalWsChannel.send_json

    async def send_spy(self: Any, payload: Dict[str, Any]) -> None:
        frames.append({"t_ms": stamp(), "dir": "client->server", "msg": _jsonable(payload)})
        await original_send(self, payload)

    async def status_hook(msg: Dict[str, Any]) -> None:
        frames.append({"t_ms": stamp(), "dir": "server->client", "msg": _jsonable(msg)})

    ws_job_status.BidirectionalWsChannel.send_json = send_spy  # type: ignore[method-assign]
    try:
        answer = await client.execute_command_unified(command, params, status_hook=status_hook)
    finally:
        ws_job_status.BidirectionalWsChannel.send_json = original_send  # type: ignore[method-assign]
    elapsed = stamp()
    job_id = answer.get("job_id") if isinstance(answer, dict) else None
    status_raw: Any = None
    if job_id:
        status_raw = await client.jsonrpc_call("queue_get_job_status", {"job_id": job_id})
    return {
        "command": command,
        "params": params,
        "elapsed_ms": elapsed,
        "ws_frames": frames,
        "answer": _jsonable(answer),
        "queue_get_job_status": _jsonable(status_raw),
    }


async def run(args: argparse.Namespace) -> int:
    import aiohttp

    from mcp_proxy_adapter.client.jsonrpc_client import JsonRpcClient

    params = json.loads(args.params)
    if not isinstance(params, dict):
        raise SystemExit("--params must be a JSON object")
    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise SystemExit(f"--url must be http(s)://host:port, got {args.url!r}")
    port = url.port or (443 if url.scheme == "https" else 80)

    root = logging.getLogger()
    fallback = _MarkerCounter(FALLBACK_MARKER, logging.WARNING)
    root.addHandler(fallback)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    # The session-open fallback is logged at DEBUG by one module only: count it
    # there, without turning DEBUG on for the whole framework.
    session_fallback = _MarkerCounter(SESSION_FALLBACK_MARKER, logging.DEBUG)
    command_api_logger = logging.getLogger(COMMAND_API_LOGGER)
    command_api_logger.addHandler(session_fallback)
    command_api_logger.setLevel(logging.DEBUG)

    ws_connects = {"n": 0}
    original_ws_connect = aiohttp.ClientSession.ws_connect

    async def ws_connect_spy(self: Any, *a: Any, **kw: Any) -> Any:
        ws_connects["n"] += 1
        return await original_ws_connect(self, *a, **kw)

    aiohttp.ClientSession.ws_connect = ws_connect_spy  # type: ignore[method-assign]

    client_kwargs: Dict[str, Any] = {
        "protocol": url.scheme,
        "host": url.hostname,
        "port": port,
        "timeout": args.timeout,
    }
    if args.api_key:
        client_kwargs["token_header"] = "X-API-Key"
        client_kwargs["token"] = args.api_key
    client = JsonRpcClient(**client_kwargs)

    samples_ms: List[float] = []
    last: Any = None
    trace: Optional[Dict[str, Any]] = None
    try:
        for i in range(args.warmup + args.n):
            t0 = time.perf_counter()
            try:
                last = await client.execute_command_unified(args.command, params)
            except Exception as exc:  # noqa: BLE001 - reported, then exit 1
                phase = "warm-up" if i < args.warmup else "timed"
                sys.stderr.write(
                    f"bench_unified: {phase} call {i} of {args.command!r} raised "
                    f"{type(exc).__name__}: {exc}\n"
                )
                traceback.print_exc(file=sys.stderr)
                return 1
            elapsed_ms = (time.perf_counter() - t0) * 1000.0
            if i >= args.warmup:
                samples_ms.append(elapsed_ms)
        connects_measured = ws_connects["n"]
        if args.trace:
            trace = await _traced_call(client, args.command, params)
    finally:
        aiohttp.ClientSession.ws_connect = original_ws_connect  # type: ignore[method-assign]
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass

    if trace is not None:
        trace["fallback_warnings_total"] = fallback.count
        trace["session_fallbacks_total"] = session_fallback.count
        with open(args.trace, "w", encoding="utf-8") as fh:
            json.dump(trace, fh, indent=2)
            fh.write("\n")

    for sample in fallback.samples + session_fallback.samples:
        sys.stderr.write(f"bench_unified: fallback record: {sample}\n")

    ordered = sorted(samples_ms)
    out: Dict[str, Any] = {
        "command": args.command,
        "n": len(samples_ms),
        "p50_ms": round(percentile(ordered, 50), 3),
        "p90_ms": round(percentile(ordered, 90), 3),
        "p99_ms": round(percentile(ordered, 99), 3),
        "mean_ms": round(sum(ordered) / len(ordered), 3) if ordered else None,
        "min_ms": round(ordered[0], 3) if ordered else None,
        "max_ms": round(ordered[-1], 3) if ordered else None,
        "fallback_warnings": fallback.count,
        "session_fallbacks": session_fallback.count,
        "ws_connections_opened": connects_measured,
        "mode": last.get("mode") if isinstance(last, dict) else None,
        "sample_result": _jsonable(last.get("result")) if isinstance(last, dict) else None,
    }
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--command", default="noop")
    parser.add_argument("--params", default="{}", help="JSON object")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--api-key", default=None, help="sent as X-API-Key")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout, s")
    parser.add_argument("--trace", default=None, help="write one traced exchange here")
    args = parser.parse_args()
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be >= 1 and --warmup >= 0")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
