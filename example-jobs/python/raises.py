"""Fails on purpose: by default with a plain exception; `{"kind": "job_error"}` raises JobError.

Also logs at every level and prints, to check that the host keeps the levels.
"""

import logging

from queuemgr_job import JobError, QueueJobBase

log = logging.getLogger("raises")


class Raises(QueueJobBase):
    """Logs a line at each level, then raises (ValueError, or JobError with kind=job_error)."""

    name = "raises"
    params_schema = {
        "type": "object",
        "properties": {"kind": {"enum": ["value_error", "job_error"], "default": "value_error"}},
    }

    def execute(self):
        print("about to fail")
        log.debug("a debug line (dropped at the default INFO level)")
        log.info("an info line")
        log.warning("a warning line")
        log.error("an error line")
        logging.info("a root info line")
        if self.params.get("kind") == "job_error":
            raise JobError("UPSTREAM_UNAVAILABLE", "the upstream said 503", retryable=True)
        raise ValueError("bad input: limit must be positive")
