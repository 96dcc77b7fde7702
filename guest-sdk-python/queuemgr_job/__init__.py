"""Write queuemgr jobs in Python.

A job is a class that inherits :class:`QueueJobBase` and implements ``execute()``, as in the
original queuemgr::

    from queuemgr_job import QueueJobBase

    class MyJob(QueueJobBase):
        def __init__(self, job_id, params):
            super().__init__(job_id, params)
            self.task_name = params.get("task_name", "default_task")

        def execute(self):
            print(f"Starting task: {self.task_name}")
            self.set_progress(100, "done")
            self.set_result({"job_id": self.job_id, "status": "completed"})

``scripts/build-python-job.sh my_job.py -o jobs/my_job.wasm`` turns the module into a
component of the ``queuemgr:job`` world (wit/job.wit) with componentize-py. The module must
define exactly one ``QueueJobBase`` subclass, or name its job with ``JOB = MyJob``.

What the host sees:

* ``describe()`` comes from class attributes: ``name`` (default: the class name),
  ``version`` (default ``"0.1.0"``), ``description`` (default: the class docstring) and
  ``params_schema`` (a JSON Schema as a dict; default ``{"type": "object"}``). The host
  validates ``add_job`` params against the schema.
* ``run(params)`` builds ``JobClass(job_id, params)``, calls ``on_start()``, ``execute()``,
  ``on_end()`` and returns what ``set_result()`` was given (or, if it was never called,
  what ``execute()`` returned) as JSON.
* An exception escaping ``execute()`` ends the job in ``ERROR`` with a structured error:
  ``code`` is the exception's ``code`` attribute if it has one (str or int), else its class
  name; ``message`` is ``str(exc)``; ``retryable`` is its ``retryable`` attribute (default
  False). :class:`JobError` sets all three explicitly. ``on_error(exc)`` is called first and
  the traceback is logged at ERROR level.
* ``print()`` goes to stdout, which the host keeps as log lines (line-buffered, so lines show
  up while the job runs). ``logging`` records go to the host's ``log`` import with their
  level (DEBUG→debug, INFO→info, WARNING→warn, ERROR/CRITICAL→error, below DEBUG→trace);
  the root level defaults to the class attribute ``log_level`` (INFO) unless the module set
  one itself (e.g. ``logging.basicConfig(level=logging.DEBUG)``).
* A stop (``stop_job``) ends the instance at once, wherever Python is: in ``sleep()``, in
  ``time.sleep()`` or in a busy loop. No Python code runs after it (``on_stop`` is never
  called); ``should_stop()`` and ``sleep()``'s return value are for code that wants to end
  cleanly if the host ever lets it.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any, Dict, Optional

try:  # Inside the component: the bindings componentize-py generates for wit/job.wit.
    from wit_world.imports import host as _host

    try:  # the job-http world: beside wasi:http's `types`, ours is named after its package
        from wit_world.imports import queuemgr_job_types as _types
    except ImportError:
        from wit_world.imports import types as _types
    from componentize_py_types import Err as _Err
    from wit_world.imports import flow as _flow

    IN_COMPONENT = True
except ImportError:  # Plain CPython (tests, `python -m queuemgr_job`): a stand-in host.
    from . import _local as _host

    _types = _host
    _Err = _host.Err
    _flow = _host
    IN_COMPONENT = False

__all__ = [
    "QueueJobBase",
    "JobError",
    "HostLogHandler",
    "job_id",
    "progress",
    "should_stop",
    "sleep",
    "log",
    "step",
    "spawn",
    "join",
    "sleep_for",
    "sleep_until",
    "wait_for_event",
]

__version__ = "0.1.0"


class JobError(Exception):
    """A failure the job reports on purpose: the job ends in ERROR with this code.

    ``raise JobError("INVALID_INPUT", "limit must be positive")``; ``retryable=True`` tells
    the host that running the job again may succeed.
    """

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


# --- the host imports, as plain functions -------------------------------------------------


def progress(percent: float, description: str = "") -> None:
    """Reports progress: ``percent`` in 0..100 (clamped, rounded down) and a description."""
    try:
        p = int(percent)
    except (TypeError, ValueError, OverflowError):
        p = 0
    _host.progress(max(0, min(100, p)), str(description))


def should_stop() -> bool:
    """True once a stop of this job was requested."""
    return bool(_host.should_stop())


def sleep(seconds: float) -> bool:
    """Parks the job in the host for ``seconds`` (no host thread is held).

    Returns True if it woke early because a stop was requested.
    """
    millis = int(max(0.0, float(seconds)) * 1000)
    return bool(_host.sleep(millis))


def job_id() -> str:
    """The id the job was added under."""
    return _host.job_id()


# --- durable execution (docs/workflows.md) ----------------------------------------------------
#
# A job that uses these runs again from the top after a retry, a rescue or a wake-up: a stored
# step returns its result at once, a spawn of a name returns the same child, and a wait that is
# not over suspends the job (the call does not return; the job runs again from the top later).
# Code between steps must be deterministic: read the clock and the outside world in steps.


def step(name: str, fn) -> Any:
    """Runs ``fn()`` once for this job, ever: its result (any JSON value) is stored before this
    returns, and every later run of the job gets the stored result without calling ``fn``. An
    exception from ``fn`` is not stored: the job fails (or is retried) and the step runs
    again."""
    stored = _flow.step_result(name)
    if stored is not None:
        return json.loads(stored)
    value = fn()
    _flow.store_step(name, json.dumps(value))
    return value


def spawn(
    name: str,
    job_type: str,
    params: Optional[Dict[str, Any]] = None,
    queue: Optional[str] = None,
    priority: Optional[int] = None,
    max_attempts: Optional[int] = None,
) -> str:
    """Enqueues a child job named ``name`` within this job; returns its id
    (``<this id>.<name>``). A re-run that spawns the same name gets the same child. Children
    are written at the job's next wait or its end. Raises :class:`JobError` for an unknown
    type or params its schema refuses."""
    options = _flow.ChildOptions(queue=queue, priority=priority, max_attempts=max_attempts)
    try:
        return _flow.enqueue(name, job_type, json.dumps(params or {}), options)
    except _Err as e:
        err = e.value
        raise JobError(err.code, err.message, err.retryable) from None


def join(children) -> list:
    """How the children (ids from :func:`spawn`) ended, in order: a list of dicts with ``id``,
    ``status`` (``COMPLETED``, ``ERROR``, ``STOPPED``, ``DELETED``), ``result`` and
    ``error``. If one has not ended yet, the job suspends here."""
    out = []
    for e in _flow.join(list(children)):
        out.append(
            {
                "id": e.id,
                "status": e.status,
                "result": json.loads(e.output) if e.output is not None else None,
                "error": (
                    {"code": e.error.code, "message": e.error.message, "retryable": e.error.retryable}
                    if e.error is not None
                    else None
                ),
            }
        )
    return out


def _millis(t: float) -> int:
    return max(0, int(t * 1000))


def sleep_until(at: float) -> None:
    """Waits until ``at`` (seconds since the epoch): short waits park, long ones suspend."""
    _flow.sleep_until(_millis(at))


def sleep_for(name: str, seconds: float) -> None:
    """Waits ``seconds`` from the first time the job reached this call (the deadline is the
    step ``sleep:<name>``)."""
    import time

    at = step(f"sleep:{name}", lambda: _millis(time.time() + float(seconds)))
    _flow.sleep_until(int(at))


def wait_for_event(name: str, timeout: Optional[float] = None) -> Any:
    """The payload of the event ``name`` sent to this job (``queue_send_event``), or ``None``
    once ``timeout`` seconds (from the first time the job reached this call) passed without
    one. Until then the job suspends."""
    import time

    deadline = None
    if timeout is not None:
        deadline = int(step(f"wait:{name}", lambda: _millis(time.time() + float(timeout))))
    payload = _flow.wait_for_event(name, deadline)
    return json.loads(payload) if payload is not None else None


_LEVELS = {
    "trace": _types.LogLevel.TRACE,
    "debug": _types.LogLevel.DEBUG,
    "info": _types.LogLevel.INFO,
    "warn": _types.LogLevel.WARN,
    "warning": _types.LogLevel.WARN,
    "error": _types.LogLevel.ERROR,
    "critical": _types.LogLevel.ERROR,
}


def _host_level(levelno: int):
    if levelno >= logging.ERROR:
        return _types.LogLevel.ERROR
    if levelno >= logging.WARNING:
        return _types.LogLevel.WARN
    if levelno >= logging.INFO:
        return _types.LogLevel.INFO
    if levelno >= logging.DEBUG:
        return _types.LogLevel.DEBUG
    return _types.LogLevel.TRACE


def log(level, message: str) -> None:
    """Writes one log line with a level: ``"info"``, ``"warn"``, … or a ``logging`` level."""
    if isinstance(level, int):
        lvl = _host_level(level)
    else:
        lvl = _LEVELS.get(str(level).lower(), _types.LogLevel.INFO)
    _host.log(lvl, str(message))


class HostLogHandler(logging.Handler):
    """A ``logging`` handler that sends each record to the host's ``log`` import."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(_Formatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _host.log(_host_level(record.levelno), self.format(record))
        except Exception:  # never let logging break the job
            self.handleError(record)


class _Formatter(logging.Formatter):
    """``message`` for the root logger, ``name: message`` for named ones; tracebacks kept."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.name and record.name != "root":
            text = f"{record.name}: {text}"
        return text


def _install_logging(default_level: int) -> None:
    root = logging.getLogger()
    # basicConfig() at import time adds a StreamHandler to stderr/stdout: replace it with the
    # host handler (its lines would arrive without their level), keeping the level it set.
    for h in list(root.handlers):
        if isinstance(h, HostLogHandler):
            return
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (
            sys.stderr,
            sys.stdout,
            sys.__stderr__,
            sys.__stdout__,
        ):
            root.removeHandler(h)
    if root.level == logging.WARNING and not root.handlers:
        root.setLevel(default_level)
    root.addHandler(HostLogHandler())


def _line_buffered() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# --- the base class -----------------------------------------------------------------------


class QueueJobBase:
    """Base class of a queuemgr job written in Python (the original's ``QueueJobBase``).

    Override ``execute()``; read ``self.job_id`` and ``self.params``; report with
    ``set_progress()`` and finish with ``set_result()``.
    """

    #: Job name reported by ``describe()``; default: the class name.
    name: Optional[str] = None
    #: The job's own version.
    version: str = "0.1.0"
    #: One or two sentences for humans; default: the class docstring.
    description: Optional[str] = None
    #: JSON Schema of the params object (a dict, or JSON text).
    params_schema: Any = {"type": "object"}
    #: Root logging level while the job runs (unless the module configured logging itself).
    log_level: int = logging.INFO

    def __init__(self, job_id: str, params: Dict[str, Any]) -> None:
        self.job_id = job_id
        self.params = params
        self.error: Optional[BaseException] = None
        self._result: Any = None
        self._result_set = False
        self._progress = 0
        self._description = ""
        self.logger = logging.getLogger(self.job_name())

    # -- to override --

    def execute(self) -> Any:
        """The job's work. Runs once; an exception ends the job in ERROR."""
        raise NotImplementedError(f"{type(self).__name__}.execute() is not implemented")

    def on_start(self) -> None:
        """Called before ``execute()``."""

    def on_end(self) -> None:
        """Called after ``execute()`` returned normally."""

    def on_error(self, exc: BaseException) -> None:
        """Called when ``execute()`` (or a hook) raised ``exc``, before the job ends in ERROR."""

    def on_stop(self) -> None:
        """Kept for source compatibility with the original; the host never calls it (a stop
        ends the instance at once)."""

    # -- result --

    def set_result(self, result: Any) -> None:
        """Sets the job's result: any JSON value (usually a dict)."""
        self._result = result
        self._result_set = True

    def get_result(self) -> Any:
        return self._result

    # -- progress (the original wrote it with update_job_state(progress=, description=)) --

    def set_progress(self, percent: float, description: Optional[str] = None) -> None:
        """Reports ``percent`` (0..100) and, optionally, a new description of the step."""
        if description is not None:
            self._description = str(description)
        try:
            self._progress = max(0, min(100, int(percent)))
        except (TypeError, ValueError, OverflowError):
            pass
        _host.progress(self._progress, self._description)

    update_progress = set_progress
    report_progress = set_progress

    def set_description(self, description: str) -> None:
        """Changes the description, keeping the percent."""
        self.set_progress(self._progress, description)

    def update_state(
        self,
        progress: Optional[float] = None,
        description: Optional[str] = None,
        result: Any = ...,
    ) -> None:
        """The original's ``update_job_state(progress=, description=, result=)`` keywords."""
        if progress is not None or description is not None:
            self.set_progress(self._progress if progress is None else progress, description)
        if result is not ...:
            self.set_result(result)

    # -- host services --

    def should_stop(self) -> bool:
        """True once a stop was requested."""
        return should_stop()

    def sleep(self, seconds: float) -> bool:
        """Parks in the host for ``seconds``; True if woken by a stop request."""
        return sleep(seconds)

    def log(self, level, message: str) -> None:
        """One log line at ``level`` (``"info"``, ``"warn"``, … or a ``logging`` level)."""
        log(level, message)

    # -- durable execution (see the module-level functions) --

    def step(self, name: str, fn) -> Any:
        """:func:`step`: ``fn()`` runs once for this job, ever; its result is stored."""
        return step(name, fn)

    def spawn(self, name: str, job_type: str, params=None, **options) -> str:
        """:func:`spawn`: a child job, once per name; its id."""
        return spawn(name, job_type, params, **options)

    def join(self, children) -> list:
        """:func:`join`: how the children ended (suspends until they have)."""
        return join(children)

    def sleep_for(self, name: str, seconds: float) -> None:
        """:func:`sleep_for`: a durable sleep (suspends if long)."""
        sleep_for(name, seconds)

    def wait_for_event(self, name: str, timeout: Optional[float] = None) -> Any:
        """:func:`wait_for_event`: an event's payload, or None after the timeout."""
        return wait_for_event(name, timeout)

    # -- describe() --

    @classmethod
    def job_name(cls) -> str:
        return cls.name or cls.__name__

    @classmethod
    def job_description(cls) -> str:
        if cls.description is not None:
            return str(cls.description)
        doc = cls.__doc__ if cls.__doc__ is not QueueJobBase.__doc__ else None
        if not doc:
            return ""
        import inspect

        return inspect.cleandoc(doc).split("\n\n", 1)[0].replace("\n", " ")

    @classmethod
    def job_schema_json(cls) -> str:
        schema = cls.params_schema
        if isinstance(schema, (bytes, str)):
            json.loads(schema)  # must be JSON text
            return schema if isinstance(schema, str) else schema.decode()
        return json.dumps(schema)


# --- the world's exports ------------------------------------------------------------------


def _error_of(exc: BaseException):
    if isinstance(exc, JobError):
        code, message, retryable = exc.code, exc.message, exc.retryable
    else:
        code = getattr(exc, "code", None)
        if not isinstance(code, (str, int)) or isinstance(code, bool) or code == "":
            code = type(exc).__name__
        message = str(exc) or type(exc).__name__
        retryable = getattr(exc, "retryable", False)
    return _types.JobError(code=str(code), message=str(message), retryable=bool(retryable))


def _user_frames(exc: BaseException):
    """The traceback without this module's own frames on top."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__") == __name__ and tb.tb_next:
        tb = tb.tb_next
    return tb


def run_job(cls, params_json: str) -> str:
    """Runs one job of class ``cls``: returns the result as JSON text or raises ``Err``."""
    _line_buffered()
    _install_logging(cls.log_level)
    job = None
    try:
        try:
            params = json.loads(params_json) if params_json else {}
        except ValueError as e:
            raise JobError("INVALID_PARAMS", f"params are not JSON: {e}") from None
        if params is None:
            params = {}
        jid = job_id()
        job = cls(jid, params)
        if "_result_set" not in vars(job):  # an __init__ that did not call super().__init__
            QueueJobBase.__init__(job, jid, params)
        job.on_start()
        returned = job.execute()
        job.on_end()
        result = job._result if job._result_set else returned
        try:
            return json.dumps(result)
        except (TypeError, ValueError) as e:
            raise JobError("INVALID_RESULT", f"the result is not JSON-serialisable: {e}")
    except SystemExit as e:
        if e.code in (None, 0) and job is not None:
            _flush()
            return json.dumps(job._result if job._result_set else None)
        err = _types.JobError(code="SystemExit", message=f"exit status {e.code}", retryable=False)
        _flush()
        raise _Err(err)
    except Exception as e:  # noqa: BLE001 — every failure becomes a structured job error
        if job is not None:
            job.error = e
            try:
                job.on_error(e)
            except Exception:
                logging.getLogger(cls.job_name()).exception("on_error() raised")
        if not isinstance(e, JobError):
            logging.getLogger(cls.job_name()).error(
                "%s", "".join(traceback.format_exception(type(e), e, _user_frames(e))).rstrip()
            )
        err = _error_of(e)
        _flush()
        raise _Err(err)
    finally:
        _flush()


def find_job_class(module):
    """The module's job class: ``JOB`` if set, else its only ``QueueJobBase`` subclass."""
    cls = getattr(module, "JOB", None)
    if cls is not None:
        if not (isinstance(cls, type) and issubclass(cls, QueueJobBase)):
            raise TypeError(f"{module.__name__}.JOB must be a QueueJobBase subclass, got {cls!r}")
        return cls
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, QueueJobBase)
        and v is not QueueJobBase
        and v.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(sorted(c.__name__ for c in found)) or "none"
        raise TypeError(
            f"{module.__name__} must define exactly one QueueJobBase subclass or set "
            f"`JOB = TheClass` (found: {names})"
        )
    return found[0]


def make_world(module_name: str):
    """The class componentize-py instantiates for the world's exports (``WitWorld``)."""
    import importlib

    module = importlib.import_module(module_name)
    cls = find_job_class(module)
    # Done here, at build time, so that it is part of componentize-py's snapshot and not
    # repeated by every run (run_job checks again, cheaply).
    _line_buffered()
    _install_logging(cls.log_level)
    info = _types.JobInfo(
        name=cls.job_name(),
        version=str(cls.version),
        description=cls.job_description(),
        params_schema=cls.job_schema_json(),
    )

    class WitWorld:
        def describe(self):
            return info

        def run(self, params: str) -> str:
            return run_job(cls, params)

    WitWorld.job_class = cls
    return WitWorld
