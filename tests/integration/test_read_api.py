"""`baker api` as a process of its own beside a Brain and a `baker projector`, on a real
nats-server, over a SQLite file and over a real PostgreSQL: a job dispatched through the
Brain is read through `baker api` (GET and its SSE stream); a write sent to `baker api` is
refused naming the Brain."""

from __future__ import annotations

import asyncio
import signal
from contextlib import ExitStack
from pathlib import Path

import httpx

from adapters.nats.server import NatsServerProcess
from tests.e2e.procs import port_of, started
from tests.polling import until
from tests.support.postgres import postgres_url
from tests.support.read_models import ReadModel, read_model

__all__ = ["postgres_url", "read_model"]


async def test_a_job_dispatched_through_the_brain_is_read_through_baker_api(
    nats_server: NatsServerProcess, read_model: ReadModel, tmp_path: Path
) -> None:
    env = {
        "BAKER_NATS_URL": nats_server.url, "BAKER_DB": read_model.location,
        "BAKER_DATA_DIR": str(tmp_path / "data"), "BAKER_API_PORT": "0",
        "BAKER_LOG_LEVEL": "WARNING", "BAKER_SSE_KEEPALIVE_SECONDS": "0.5",
    }  # fmt: skip
    with ExitStack() as running:
        projector = running.enter_context(started("projector", env=env))
        await asyncio.to_thread(projector.wait_for, "baker projector", 60)
        brain = running.enter_context(started("brain", env=env))
        brain_url = f"http://127.0.0.1:{await asyncio.to_thread(port_of, brain)}"
        api = running.enter_context(started("api", env={**env, "BAKER_BRAIN_URL": brain_url}))
        api_url = f"http://127.0.0.1:{await asyncio.to_thread(port_of, api)}"
        async with httpx.AsyncClient(timeout=10) as client:
            posted = await client.post(f"{brain_url}/api/jobs", json={
                "type": "command", "payload": {"command": "echo hi"},
            })  # fmt: skip
            assert posted.status_code == 202, posted.text
            job_id = posted.json()["id"]

            async def read() -> bool:
                got = await client.get(f"{api_url}/api/jobs/{job_id}")
                return got.status_code == 200 and got.json()["id"] == job_id

            await until(read, "baker api reads the job")
            async with client.stream("GET", f"{api_url}/api/jobs/{job_id}/stream") as sse:
                assert sse.status_code == 200
                seen = await asyncio.wait_for(_first_line_naming(sse, "JobDispatched"), 30)
            assert "JobDispatched" in seen
            refused = await client.post(f"{api_url}/api/jobs", json={"type": "command"})
            assert refused.status_code == 405
            assert refused.json()["brain"] == brain_url

            async def listed() -> bool:  # the read model `baker projector` keeps, as a page
                page = await client.get(f"{api_url}/api/jobs")
                return job_id in {j["id"] for j in page.json()["jobs"]}

            await until(listed, "baker api lists the job from the read model")
        assert api.stop(signal.SIGTERM) == 0


async def _first_line_naming(sse: httpx.Response, text: str) -> str:
    async for line in sse.aiter_lines():
        if text in line:
            return line
    raise AssertionError(f"the stream ended before a line naming {text}")
