"""CPU-bound benchmark: counts the primes below `limit` in pure Python (trial division)."""

from queuemgr_job import JobError, QueueJobBase


class Primes(QueueJobBase):
    """Counts the primes below `limit` by trial division (pure Python, CPU-bound)."""

    name = "primes"
    version = "1.0.0"
    params_schema = {
        "type": "object",
        "properties": {"limit": {"type": "integer", "minimum": 0, "maximum": 100000000, "default": 100000}},
        "additionalProperties": False,
    }

    def execute(self):
        limit = self.params.get("limit", 100000)
        if not isinstance(limit, int) or limit < 0:
            raise JobError("INVALID_INPUT", "limit must be a non-negative integer")
        count = 0
        step = max(limit // 10, 1)
        for n in range(2, limit):
            d = 2
            prime = True
            while d * d <= n:
                if n % d == 0:
                    prime = False
                    break
                d += 1
            if prime:
                count += 1
            if n % step == 0:
                self.set_progress(n * 100 // limit, f"{n}/{limit}")
        self.set_result({"limit": limit, "primes": count})
