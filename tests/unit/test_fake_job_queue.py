"""The in-memory job queue passes the job ports' contract, as the NATS adapters do."""

from __future__ import annotations

import pytest

from tests.contract.job_ports_contract import ACK_WAIT, MAX_DELIVER, JobPortsContract, Ports, job
from tests.fakes.jobqueue import FakeJobQueue


class TestFakeJobQueue(JobPortsContract):
    @pytest.fixture
    def ports(self) -> Ports:
        fake = FakeJobQueue(max_messages=20, ack_wait=ACK_WAIT, max_deliver=MAX_DELIVER)
        return Ports(fake, fake, fake.work_source(), fake.report_source(), fake.advisories())

    async def fill_to_the_limit(self, ports: Ports) -> None:
        for i in range(20):
            await ports.queue.dispatch(job(f"job-f{i}"), {})
