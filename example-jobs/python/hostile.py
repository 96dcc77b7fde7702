"""What a buggy Python job does, one `mode` per run (for the host's tests):

- `busy`: spins in `while True: pass` without calling the host; a stop must still end it;
- `value_error`: logs a line at each level and prints, then raises ValueError;
- `job_error`: the same, then raises JobError("UPSTREAM_UNAVAILABLE", …, retryable=True);
- `read`: reads the file at `path` (e.g. in a granted directory, or `/etc/passwd`, which no
  job is granted) and returns its lines and size;
- `write`: writes `text` to the file at `path` (allowed in a read-write grant only);
- `fetch`: GETs `url` `repeat` times with `queuemgr_job.http` (allowed where the manifest's
  `[http]` grant says) and returns the last status and body.
"""

import logging

from queuemgr_job import JobError, QueueJobBase, http

log = logging.getLogger("hostile")


class Hostile(QueueJobBase):
    """Spins until stopped, or fails on purpose (see the module's docstring)."""

    name = "hostile_py"
    params_schema = {
        "type": "object",
        "properties": {
            "mode": {"enum": ["busy", "value_error", "job_error", "read", "write", "fetch"]},
            "path": {"type": "string"},
            "url": {"type": "string"},
            "repeat": {"type": "integer", "minimum": 1},
            "text": {"type": "string"},
        },
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
        if mode == "read":
            with open(self.params["path"], encoding="utf-8") as f:
                text = f.read()
            self.set_result({"lines": text.count("\n"), "bytes": len(text.encode()), "first": text.splitlines()[:1]})
            return
        if mode == "write":
            with open(self.params["path"], "w", encoding="utf-8") as f:
                f.write(self.params.get("text", ""))
            self.set_result({"written": len(self.params.get("text", ""))})
            return
        if mode == "fetch":
            for _ in range(self.params.get("repeat", 1)):
                res = http.get(self.params["url"])
            self.set_result({"status": res.status, "body": res.text, "type": res.header("content-type")})
            return
        print("about to fail")
        log.debug("a debug line (dropped at the default INFO level)")
        log.info("an info line")
        log.warning("a warning line")
        log.error("an error line")
        if mode == "job_error":
            raise JobError("UPSTREAM_UNAVAILABLE", "the upstream said 503", retryable=True)
        raise ValueError("bad input: limit must be positive")
