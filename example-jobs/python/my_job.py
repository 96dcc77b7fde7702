"""The seed's MyJob, as a queuemgr Python job (build: scripts/build-python-job.sh my_job.py)."""

import time

from queuemgr_job import QueueJobBase


class MyJob(QueueJobBase):
    """The seed's example job: runs `duration` seconds, one step a second, reporting progress."""

    name = "MyJob"
    version = "1.0.0"
    params_schema = {
        "type": "object",
        "properties": {
            "task_name": {"type": "string", "description": "Name of the task", "default": "default_task"},
            "duration": {"type": "integer", "minimum": 0, "maximum": 86400,
                         "description": "Seconds to run, one step a second", "default": 5},
        },
        "additionalProperties": False,
    }

    def __init__(self, job_id: str, params: dict):
        super().__init__(job_id, params)
        self.task_name = params.get('task_name', 'default_task')
        self.duration = params.get('duration', 5)

    def execute(self) -> None:
        print(f"Starting task: {self.task_name}")

        for i in range(self.duration):
            time.sleep(1)
            progress = (i + 1) / self.duration * 100
            print(f"Progress: {progress:.1f}%")
            self.set_progress(progress, f"step {i + 1}/{self.duration}")

        result = {
            "job_id": self.job_id,
            "task_name": self.task_name,
            "completed_at": time.time(),
            "status": "completed"
        }

        self.set_result(result)
