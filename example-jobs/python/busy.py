"""Spins forever without calling the host: stop_job must still end it (at a fuel check)."""

import logging

from queuemgr_job import QueueJobBase


class Busy(QueueJobBase):
    """Spins in `while True: pass` until it is stopped."""

    name = "busy"

    def execute(self):
        logging.warning("spinning until stopped")
        self.set_progress(1, "spinning")
        while True:
            pass
