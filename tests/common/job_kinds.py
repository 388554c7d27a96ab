"""Run functions of the job kinds the job tests register (real functions the worker imports)."""

from common.jobs import JobFailed, job_progress
from common.models import Job

runs: list[str] = []


def run_echo(job: Job) -> dict:
    """Reports progress, then echoes its payload; what readers saw mid-run goes in the result."""
    runs.append(str(job.pk))
    job_progress(job, 0.5, "Half way", force=True)
    seen = Job.objects.values("state", "progress", "message").get(pk=job.pk)
    if job.payload.get("fail"):
        raise JobFailed(job.payload["fail"], result={"seen": seen})
    if job.payload.get("swept_while_finishing"):
        # The sweep takes the job from this run after its last progress write.
        Job.objects.filter(pk=job.pk).update(state="failed", error="The worker stopped answering.")
    if job.payload.get("crash"):
        raise ZeroDivisionError("division by zero")
    return {"echo": job.payload, "seen": seen}


cleaned: list[str] = []


def cleanup_echo(job: Job) -> None:
    cleaned.append(str(job.pk))
