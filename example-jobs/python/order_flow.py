"""An order as a durable flow, in Python: charge once (a step), pack each item in a child job
(the Rust ``order_item``), wait for every item, wait for an approval (an event), ship (a
step). The same flow as ``example-jobs/order-flow`` in Rust; ``ledger`` (a file in a granted
directory) gets one line per effect."""

from queuemgr_job import JobError, QueueJobBase


def effect(ledger, line):
    if ledger:
        with open(ledger, "a") as f:
            f.write(line + "\n")


class OrderFlow(QueueJobBase):
    """An order as a durable flow: charge, pack each item in a child job, wait for approval, ship."""

    params_schema = {
        "type": "object",
        "required": ["order_id", "amount", "items"],
        "properties": {
            "order_id": {"type": "string"},
            "amount": {"type": "number"},
            "items": {"type": "array", "items": {"type": "object"}},
            "ledger": {"type": "string"},
        },
    }

    def execute(self):
        p = self.params
        ledger = p.get("ledger")

        def charge():
            effect(ledger, f"charge {p['order_id']}")
            return {"charged": p["amount"]}

        charged = self.step("charge", charge)
        self.set_progress(20, "charged")
        children = [self.spawn(f"item-{i}", "order_item", item) for i, item in enumerate(p["items"])]
        packed = self.join(children)
        failed = [c for c in packed if c["status"] != "COMPLETED"]
        if failed:
            raise JobError("ITEM_FAILED", f"{failed[0]['id']} ended {failed[0]['status']}")
        self.set_progress(60, "packed")
        approval = self.wait_for_event("approval", timeout=24 * 3600)
        if approval is None:
            raise JobError("APPROVAL_TIMEOUT", "nobody approved the order in time")
        if not approval.get("approved"):
            return {"order_id": p["order_id"], "status": "rejected"}

        def ship():
            effect(ledger, f"ship {p['order_id']}")
            return {"shipped": True}

        shipped = self.step("ship", ship)
        self.set_result(
            {
                "order_id": p["order_id"],
                "status": "shipped",
                "charge": charged,
                "items": [c["result"] for c in packed],
                "approved_by": approval.get("by", "someone"),
                "ship": shipped,
            }
        )
