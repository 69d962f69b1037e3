"""A job's live output on the worker: coalesced on an injected clock (no sleeps), in
order across streams, capped, and never a failure of the job."""

from __future__ import annotations

from services.worker.output import JobOutput
from tests.fakes.clock import FakeClock, settle
from tests.fakes.output import FakeOutput


def rig(**options: int | float) -> tuple[FakeOutput, FakeClock, JobOutput]:
    sink, clock = FakeOutput(), FakeClock()
    return sink, clock, JobOutput(sink, "job-1", 2, clock=clock, **options)  # type: ignore[arg-type]


async def test_small_chunks_wait_for_the_interval_and_go_out_as_one() -> None:
    sink, clock, out = rig(every=0.05)
    for part in ("a", "b", "c"):
        out.write("stdout", part)
    await settle()
    assert sink.sent == []  # nothing before the interval has passed
    await clock.advance(0.049)
    assert sink.sent == []
    await clock.advance(0.001)
    assert [(m.seq, m.attempt, m.stream, m.data) for m in sink.sent] == [(1, 2, "stdout", "abc")]
    out.write("stdout", "d")  # a new interval starts with the next chunk
    await clock.advance(0.05)
    assert [m.data for m in sink.sent] == ["abc", "d"] and sink.sent[1].seq == 2


async def test_enough_waiting_text_goes_out_at_once_in_bounded_messages() -> None:
    sink, _clock, out = rig(max_chunk=4)
    out.write("text", "ab")
    out.write("text", "cdefghij")
    assert [m.data for m in sink.sent] == ["abcd", "efgh", "ij"]


async def test_a_change_of_stream_sends_what_waits_first() -> None:
    sink, clock, out = rig()
    out.write("stdout", "out1 ")
    out.write("stderr", "err1 ")
    out.write("stdout", "out2")
    await clock.advance(0.05)
    assert [(m.stream, m.data) for m in sink.sent] == [
        ("stdout", "out1 "), ("stderr", "err1 "), ("stdout", "out2"),
    ]  # fmt: skip


async def test_close_sends_what_waits_and_drops_later_writes() -> None:
    sink, clock, out = rig()
    out.write("text", "last words")
    out.close()
    assert [m.data for m in sink.sent] == ["last words"]
    out.write("text", "too late")
    await clock.advance(1.0)
    assert len(sink.sent) == 1 and out.dropped == len("too late")


async def test_a_job_sends_at_most_max_total_characters() -> None:
    sink, _clock, out = rig(max_total=10)
    out.write("stdout", "0123456")
    out.write("stdout", "789abc")
    out.close()
    assert sink.text("job-1") == "0123456789" and out.dropped == 3


async def test_a_failing_sink_is_counted_never_raised() -> None:
    sink, _clock, out = rig()
    sink.fail_with = ConnectionError("NATS is gone")
    out.write("text", "x" * 10_000)  # at once (over max_chunk): two sends, both refused
    out.close()
    assert out.failed == 2 and sink.sent == []
    sink.fail_with = None
    assert out.seq == 2  # a listener sees the gap
