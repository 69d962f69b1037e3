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
    for part in ("a", "b", "c\n"):
        out.write("stdout", part)
    await settle()
    assert sink.sent == []  # nothing before the interval has passed
    await clock.advance(0.049)
    assert sink.sent == []
    await clock.advance(0.001)
    assert [(m.seq, m.attempt, m.stream, m.data) for m in sink.sent] == [(1, 2, "stdout", "abc\n")]
    out.write("stdout", "d\n")  # a new interval starts with the next chunk
    await clock.advance(0.05)
    assert [m.data for m in sink.sent] == ["abc\n", "d\n"] and sink.sent[1].seq == 2


async def test_enough_waiting_text_goes_out_at_once_in_bounded_messages() -> None:
    sink, _clock, out = rig(max_chunk=4)
    out.write("text", "ab")
    out.write("text", "cdefghi\n")
    assert [m.data for m in sink.sent] == ["abcd", "efgh", "i\n"]


async def test_a_change_of_stream_sends_what_waits_first() -> None:
    sink, clock, out = rig()
    out.write("stdout", "out1 ")
    out.write("stderr", "err1 ")
    out.write("stdout", "out2\n")
    await clock.advance(0.05)
    assert [(m.stream, m.data) for m in sink.sent] == [
        ("stdout", "out1 "), ("stderr", "err1 "), ("stdout", "out2\n"),
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


ANT_KEY = "sk-ant-api03-" + "Qw3_e-R7" * 12 + "AA"


async def test_the_unfinished_end_of_a_line_waits_for_what_comes_next() -> None:
    sink, clock, out = rig()
    out.write("stdout", "done\nthe key is sk-ant-ap")  # the pipe cut the key in two
    await clock.advance(0.05)
    assert [m.data for m in sink.sent] == ["done\nthe "]  # its last three words wait
    out.write("stdout", ANT_KEY.removeprefix("sk-ant-ap") + " ok\n")
    await clock.advance(0.05)
    assert sink.text("job-1") == "done\nthe key is sk-ant-api03-*** ok\n"


async def test_what_waits_goes_out_masked_at_the_end_of_the_job() -> None:
    sink, _clock, out = rig()
    out.write("text", "Authorization: Bearer ")
    out.write("text", "0a1b2c3d4e5f6a7b8c9d")
    out.close()
    assert sink.text("job-1") == "Authorization: Bearer ***"


async def test_a_private_key_block_waits_until_it_ends() -> None:
    sink, clock, out = rig(max_chunk=16)
    out.write("stdout", "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n")
    await clock.advance(0.05)
    assert sink.text("job-1") == "key:\n"
    out.write("stdout", "dGhpcyBpcyBub3Qg\n-----END RSA PRIVATE KEY-----\nbye\n")
    await clock.advance(0.05)
    assert sink.text("job-1") == (
        "key:\n-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----\nbye\n"
    )


async def test_held_words_go_out_once_the_output_pauses() -> None:
    """A model that pauses mid-sentence must not leave its last words unseen."""
    sink, clock, out = rig()
    out.write("text", "Streaming")
    await clock.advance(0.05)
    assert sink.sent == []  # held: more could make it a secret
    await clock.advance(0.4)
    assert sink.sent == []
    await clock.advance(0.1)  # half a second after it was written
    assert sink.text("job-1") == "Streaming"
    out.write("text", " words sk-ant-ap")  # a key cut short by a pause is masked anyway
    await clock.advance(0.05)
    out.write("text", "i03-abcdefghijklmnopqrstu")  # more came: the wait starts again
    await clock.advance(0.5)
    assert sink.text("job-1") == "Streaming words sk-ant-api03-***"
