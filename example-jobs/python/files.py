"""Reads or writes a whole file in a granted directory, as Python code does it: for the
benchmark of file I/O from Python (``tests/benches/runtime.rs``, section ``io``)."""

from queuemgr_job import QueueJobBase


class Files(QueueJobBase):
    """Reads a file whole (``open(path, "rb").read()``) or writes ``bytes`` bytes to one."""

    name = "files"
    params_schema = {
        "type": "object",
        "properties": {
            "op": {"enum": ["read", "write"]},
            "path": {"type": "string"},
            "bytes": {"type": "integer", "minimum": 0, "maximum": 1 << 30},
        },
        "required": ["op", "path"],
        "additionalProperties": False,
    }

    def execute(self):
        path = self.params["path"]
        if self.params["op"] == "read":
            with open(path, "rb") as f:
                data = f.read()
            self.set_result({"bytes": len(data)})
            return
        data = b"x" * self.params.get("bytes", 0)
        with open(path, "wb") as f:
            f.write(data)
        self.set_result({"written": len(data)})
