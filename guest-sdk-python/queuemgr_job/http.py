"""Outbound HTTP from a Python job, through the host's ``wasi:http`` (a blocking client).

::

    from queuemgr_job import http

    page = http.get("https://api.example.com/status")        # any status; the body read whole
    print(page.status, page.text)
    item = http.get_json("https://api.example.com/items/7")  # JSON; a non-2xx status raises
    res = http.post_json("https://api.example.com/items", {"name": "x"})
    res = http.request("PUT", url, headers={"authorization": "Bearer …"}, body=b"…")

What the host allows is the job type's ``[http]`` grant (``jobs/<type>.toml``): a request to
a destination that is not in ``allow`` fails with :class:`HttpError` code ``HTTP_DENIED``
before any connection is made, and the host caps each request's time and response size
(``HTTP_TIMEOUT``, ``HTTP_TOO_LARGE``). Requests reuse the job type's kept-alive connections,
so a loop of calls to one API costs about what it costs natively. Redirects are not followed
(wasi:http does not; each hop would be checked by the host as a new request): a 3xx is a
response like any other.

Every error is an :class:`HttpError`, a :class:`queuemgr_job.JobError`: raised out of
``execute()`` it ends the job in ERROR with its code; ``retryable`` is set for connection
failures, time-outs, 429 and 5xx.

Under plain CPython (``python -m queuemgr_job``, tests), the same calls go through
``urllib.request``.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import urlsplit

from . import JobError

try:
    from wit_world.imports import outgoing_handler as _handler
    from wit_world.imports import wasi_http_types as _t
    from wit_world.imports import streams as _streams
    from componentize_py_types import Err as _Err, Ok as _Ok

    _IN_COMPONENT = True
except ImportError:  # plain CPython
    _IN_COMPONENT = False

__all__ = ["HttpError", "Response", "request", "get", "post", "get_json", "post_json"]

#: The most the host moves per read of a response body.
_CHUNK = 64 * 1024
#: The most ``blocking-write-and-flush`` takes at once.
_WRITE_CHUNK = 4096


class HttpError(JobError):
    """A request that failed, or (``raise_for_status``) answered with an error status.

    ``code``: ``HTTP_DENIED`` (not in the job type's allow-list, or over ``max_requests``),
    ``HTTP_TIMEOUT``, ``HTTP_TOO_LARGE``, ``HTTP_CONNECT`` (refused, DNS), ``HTTP_TLS``,
    ``HTTP_BAD_URL``, ``HTTP_STATUS`` (a non-2xx answer) or ``HTTP_ERROR``.
    """

    def __init__(self, code: str, message: str, retryable: bool = False, status: Optional[int] = None):
        super().__init__(code, message, retryable)
        self.status = status


@dataclass
class Response:
    """A response with its body read whole."""

    status: int
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    url: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return _json.loads(self.body)

    def header(self, name: str) -> Optional[str]:
        """The first value of a header (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def raise_for_status(self) -> "Response":
        """Raises :class:`HttpError` ``HTTP_STATUS`` for a status outside 200–299."""
        if not 200 <= self.status < 300:
            retry = self.status == 429 or self.status >= 500
            raise HttpError("HTTP_STATUS", f"{_redact(self.url)} answered {self.status}", retry, self.status)
        return self


def _redact(url: str) -> str:
    """The URL without its query (which may carry a token)."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}{u.path}"


def _error_of(code: Any, url: str) -> HttpError:
    """A wasi:http ``error-code`` as an :class:`HttpError`."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    where = _redact(url)
    if name == "HttpRequestDenied":
        return HttpError("HTTP_DENIED", f"denied by the host: {where} is not in this job type's http allow-list (or the run has made its http.max_requests)")
    if name in ("ConnectionTimeout", "ConnectionReadTimeout", "ConnectionWriteTimeout", "HttpResponseTimeout", "DnsTimeout"):
        return HttpError("HTTP_TIMEOUT", f"{where}: timed out ({name})", True)
    if name in ("HttpResponseBodySize", "HttpResponseHeaderSectionSize", "HttpResponseHeaderSize"):
        return HttpError("HTTP_TOO_LARGE", f"{where}: the response is over the host's cap ({name})")
    if name in ("ConnectionRefused", "ConnectionTerminated", "DnsError", "DestinationNotFound", "DestinationUnavailable", "DestinationIpUnroutable", "ConnectionLimitReached"):
        return HttpError("HTTP_CONNECT", f"{where}: {name}", True)
    if name.startswith("Tls"):
        return HttpError("HTTP_TLS", f"{where}: {name}")
    if name in ("HttpRequestUriInvalid", "HttpRequestUriTooLong"):
        return HttpError("HTTP_BAD_URL", f"{where}: {name}")
    detail = getattr(code, "value", None)
    return HttpError("HTTP_ERROR", f"{where}: {name}" + (f": {detail}" if detail else ""))


def _method(name: str):
    known = {
        "GET": _t.Method_Get, "HEAD": _t.Method_Head, "POST": _t.Method_Post,
        "PUT": _t.Method_Put, "DELETE": _t.Method_Delete, "CONNECT": _t.Method_Connect,
        "OPTIONS": _t.Method_Options, "TRACE": _t.Method_Trace, "PATCH": _t.Method_Patch,
    }
    cls = known.get(name.upper())
    return cls() if cls else _t.Method_Other(name.upper())


def _stream_error(e: Any, url: str, doing: str) -> HttpError:
    """A stream error (``Err(StreamError_…)``) while reading or writing a body."""
    value = getattr(e, "value", e)
    if type(value).__name__ == "StreamError_LastOperationFailed":
        code = _t.http_error_code(value.value)
        if code is not None:
            return _error_of(code, url)
        text = value.value.to_debug_string()
        low = text.lower()
        if "body size exceeds" in low:
            return HttpError("HTTP_TOO_LARGE", f"{_redact(url)}: {doing}: {text}")
        if "timeout" in low or "timed out" in low:
            return HttpError("HTTP_TIMEOUT", f"{_redact(url)}: {doing}: {text}", True)
        return HttpError("HTTP_ERROR", f"{_redact(url)}: {doing}: {text}")
    return HttpError("HTTP_ERROR", f"{_redact(url)}: {doing}: the stream closed")


def _send_wasi(method: str, url: str, headers: Dict[str, str], body: Optional[bytes], timeout: Optional[float]) -> Response:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise HttpError("HTTP_BAD_URL", f"'{_redact(url)}' is not an http:// or https:// URL")
    fields = _t.Fields.from_list([(k.lower(), str(v).encode()) for k, v in headers.items()])
    req = _t.OutgoingRequest(fields)
    req.set_method(_method(method))
    req.set_scheme(_t.Scheme_Https() if u.scheme == "https" else _t.Scheme_Http())
    req.set_authority(u.netloc)
    req.set_path_with_query((u.path or "/") + (f"?{u.query}" if u.query else ""))
    options = None
    if timeout is not None:
        options = _t.RequestOptions()
        ns = int(timeout * 1e9)
        for setter in (options.set_connect_timeout, options.set_first_byte_timeout, options.set_between_bytes_timeout):
            try:
                setter(ns)
            except _Err:
                pass  # the host keeps its own cap
    out_body = req.body() if body is not None else None
    try:
        future = _handler.handle(req, options)
    except _Err as e:
        raise _error_of(e.value, url) from None
    if out_body is not None:
        try:
            stream = out_body.write()
            for i in range(0, len(body), _WRITE_CHUNK):
                stream.blocking_write_and_flush(body[i:i + _WRITE_CHUNK])
            stream.__exit__(None, None, None)
            _t.OutgoingBody.finish(out_body, None)
        except _Err:
            pass  # a failed send closes the body: the response below says why
    with future:
        while True:
            ready = future.get()
            if ready is None:
                with future.subscribe() as p:
                    p.block()
                continue
            if isinstance(ready, _Err):
                raise HttpError("HTTP_ERROR", f"{_redact(url)}: the response was already taken")
            inner = ready.value
            if isinstance(inner, _Err):
                raise _error_of(inner.value, url)
            response = inner.value
            break
    with response:
        status = response.status()
        with response.headers() as h:
            hdrs = [(k.lower(), v.decode("utf-8", errors="replace")) for k, v in h.entries()]
        incoming = response.consume()
        with incoming:
            stream = incoming.stream()
            chunks = []
            with stream:
                while True:
                    try:
                        chunks.append(stream.blocking_read(_CHUNK))
                    except _Err as e:
                        if type(e.value).__name__ == "StreamError_Closed":
                            break
                        raise _stream_error(e, url, "reading the body") from None
    return Response(status, hdrs, b"".join(chunks), url)


def _send_local(method: str, url: str, headers: Dict[str, str], body: Optional[bytes], timeout: Optional[float]) -> Response:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method=method.upper(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read(), url)
    except urllib.error.HTTPError as e:
        return Response(e.code, [(k.lower(), v) for k, v in e.headers.items()], e.read(), url)
    except (urllib.error.URLError, OSError) as e:
        raise HttpError("HTTP_CONNECT", f"{_redact(url)}: {e}", True) from None


def request(method: str, url: str, headers: Optional[Dict[str, str]] = None,
            body: Union[bytes, str, None] = None, timeout: Optional[float] = None) -> Response:
    """Sends one request and reads the response whole; any status is returned (see
    :meth:`Response.raise_for_status`). ``timeout`` (seconds) can only shorten the host's."""
    if isinstance(body, str):
        body = body.encode()
    send = _send_wasi if _IN_COMPONENT else _send_local
    return send(method, url, dict(headers or {}), body, timeout)


def get(url: str, **kw: Any) -> Response:
    """``GET url``; any status."""
    return request("GET", url, **kw)


def post(url: str, body: Union[bytes, str], **kw: Any) -> Response:
    """``POST url`` with ``body``; any status."""
    return request("POST", url, body=body, **kw)


def get_json(url: str, **kw: Any) -> Any:
    """``GET url`` → its JSON; a non-2xx status raises ``HTTP_STATUS``."""
    return get(url, **kw).raise_for_status().json()


def post_json(url: str, value: Any, **kw: Any) -> Response:
    """``POST url`` with ``value`` as JSON; a non-2xx status raises ``HTTP_STATUS``."""
    headers = {"content-type": "application/json", **kw.pop("headers", {})}
    return request("POST", url, headers=headers, body=_json.dumps(value), **kw).raise_for_status()
