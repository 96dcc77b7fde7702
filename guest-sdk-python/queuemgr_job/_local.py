"""A stand-in for the host, so that a job module runs under plain CPython.

Used when the componentize-py bindings (``wit_world``) are absent: ``python -m queuemgr_job
app.py '{"k": 1}'`` runs a job locally; progress and log lines go to stderr.
"""

import os
import sys
import time
from dataclasses import dataclass
from enum import Enum


class LogLevel(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


@dataclass
class JobInfo:
    name: str
    version: str
    description: str
    params_schema: str


@dataclass
class JobError:
    code: str
    message: str
    retryable: bool


class Err(Exception):
    """componentize-py's ``Err``: carries the job error out of ``run``."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


def progress(percent: int, description: str) -> None:
    print(f"[progress {percent:3d}%] {description}", file=sys.stderr, flush=True)


def log(level: LogLevel, message: str) -> None:
    print(f"[{level.name.lower()}] {message}", file=sys.stderr, flush=True)


def should_stop() -> bool:
    return False


def job_id() -> str:
    return os.environ.get("QUEUEMGR_JOB_ID", "local")


def sleep(millis: int) -> bool:
    time.sleep(millis / 1000)
    return False


# --- durable execution, in memory (one local run: nothing is ever suspended) ---

_steps = {}


@dataclass
class ChildOptions:
    queue: object = None
    priority: object = None
    max_attempts: object = None


def step_result(name):
    return _steps.get(name)


def store_step(name, value):
    _steps[name] = value


def enqueue(name, job_type, params, options):
    print(f"[spawn] {name}: {job_type} {params}", file=sys.stderr, flush=True)
    return f"{job_id()}.{name}"


def join(ids):
    raise Err(JobError("NOT_IN_HOST", "join needs the host: child jobs do not run locally", False))


def sleep_until(at_millis):
    time.sleep(max(0.0, at_millis / 1000 - time.time()))


def wait_for_event(name, deadline_millis):
    print(f"[wait_for_event] {name}: no host, no event", file=sys.stderr, flush=True)
    return None
