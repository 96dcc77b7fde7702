"""What a buggy Python job does, one `mode` per run (for the host's tests):

- `busy`: spins in `while True: pass` without calling the host; a stop must still end it;
- `value_error`: logs a line at each level and prints, then raises ValueError;
- `job_error`: the same, then raises JobError("UPSTREAM_UNAVAILABLE", …, retryable=True).
"""

import logging

from queuemgr_job import JobError, QueueJobBase

log = logging.getLogger("hostile")


class Hostile(QueueJobBase):
    """Spins until stopped, or fails on purpose (see the module's docstring)."""

    name = "hostile_py"
    params_schema = {
        "type": "object",
        "properties": {"mode": {"enum": ["busy", "value_error", "job_error"]}},
        "required": ["mode"],
        "additionalProperties": False,
    }

    def execute(self):
        mode = self.params["mode"]
        if mode == "busy":
            logging.warning("spinning until stopped")
            self.set_progress(1, "spinning")
            while True:
                pass
        print("about to fail")
        log.debug("a debug line (dropped at the default INFO level)")
        log.info("an info line")
        log.warning("a warning line")
        log.error("an error line")
        if mode == "job_error":
            raise JobError("UPSTREAM_UNAVAILABLE", "the upstream said 503", retryable=True)
        raise ValueError("bad input: limit must be positive")
