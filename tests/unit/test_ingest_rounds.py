"""A fetched batch goes in rounds: at most one message per job each, a job's in order."""

from __future__ import annotations

from nats.aio.msg import Msg

from services.brain.ingest import rounds


def _msg(job: str, n: int) -> Msg:
    return Msg(_client=None, subject=f"baker.jobs.status.{job}", data=str(n).encode())  # type: ignore[arg-type]


def test_rounds_keep_each_job_s_order_with_one_message_per_job() -> None:
    batch = [_msg("a", 1), _msg("b", 1), _msg("a", 2), _msg("a", 3), _msg("c", 1), _msg("b", 2)]
    got = [[(m.subject[-1], int(m.data)) for m in heads] for heads in rounds(batch)]
    assert got == [[("a", 1), ("b", 1), ("c", 1)], [("a", 2), ("b", 2)], [("a", 3)]]


def test_no_messages_no_rounds() -> None:
    assert rounds([]) == []
