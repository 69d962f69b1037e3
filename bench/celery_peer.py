"""The Celery peer for the pipeline bench: the same work (`echo hi` in a subprocess) on Celery
with a Redis broker and result backend, `acks_late`, and 2 worker processes."""

from __future__ import annotations

import os
import subprocess

from celery import Celery

REDIS_URL = os.environ.get("BAKER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

app = Celery("baker_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.echo")  # type: ignore[untyped-decorator]
def echo() -> dict[str, object]:
    """Run `echo hi` in a subprocess, like a Baker Street command job."""
    done = subprocess.run(["echo", "hi"], capture_output=True, text=True, check=False)  # noqa: S607
    return {"exitCode": done.returncode, "stdout": done.stdout}
