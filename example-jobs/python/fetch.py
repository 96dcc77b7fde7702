"""Fetches a URL with the SDK's HTTP client, ``repeat`` times one after the other: the Python
twin of the ``fetch_url`` Rust example (``queuemgr_job.http``). The job type's manifest must
grant the destination, e.g. ``[http]`` ``allow = ["http://127.0.0.1:*"]``."""

import hashlib

from queuemgr_job import QueueJobBase, http


class Fetch(QueueJobBase):
    """GETs ``url`` (``repeat`` times); returns the last status, body size and sha256."""

    name = "fetch"
    params_schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1},
            "repeat": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def execute(self):
        url = self.params["url"]
        repeat = self.params.get("repeat", 1)
        for _ in range(repeat):
            res = http.get(url)
        self.set_result({
            "status": res.status,
            "bytes": len(res.body),
            "sha256": hashlib.sha256(res.body).hexdigest(),
            "requests": repeat,
        })
