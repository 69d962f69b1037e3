"""Live output as the API frames it for SSE and as `baker dispatch --wait` prints it."""

from __future__ import annotations

import io

from domain.wire_output import encode_output
from services.api.sse import output_frame
from services.cli.live_output import OutputPrinter


def test_an_output_message_becomes_one_sse_frame() -> None:
    frame = output_frame(encode_output("job-1", 1, 3, "stdout", "a\nb\r\n"), "job-1")
    assert frame == (
        b'event: output\ndata: {"id":"job-1","attempt":1,"seq":3,"stream":"stdout",'
        b'"data":"a\\nb\\r\\n"}\n\n'
    )


def test_what_is_not_the_jobs_output_is_not_framed() -> None:
    assert output_frame(encode_output("job-2", 1, 1, "text", "x"), "job-1") is None
    assert output_frame(b'{"id": "job-1", "data": "x"}', "job-1") is None
    assert output_frame(b"\n\nevent: JobCompleted\n", "job-1") is None


def printer(as_json: bool) -> tuple[OutputPrinter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return OutputPrinter(as_json, out, err), out, err


def test_readable_output_grows_in_place_and_lines_start_at_the_margin() -> None:
    p, out, err = printer(as_json=False)
    p.line("12:00  JobStarted")
    p.output({"stream": "text", "data": "The answer "})
    p.output({"stream": "text", "data": "is 42."})
    p.output({"stream": "stderr", "data": "warning: none\n"})
    p.line("12:01  JobCompleted")
    p.end()
    assert out.getvalue() == "12:00  JobStarted\nThe answer is 42.\n12:01  JobCompleted\n"
    assert err.getvalue() == "warning: none\n"


def test_json_mode_keeps_stdout_to_events_and_output_on_stderr() -> None:
    p, out, err = printer(as_json=True)
    p.line('{"type": "JobStarted"}')
    p.output({"stream": "stdout", "data": "hello"})
    p.output({"stream": "text", "data": None})  # not text: ignored
    p.line('{"type": "JobCompleted"}')
    p.end()
    assert out.getvalue() == '{"type": "JobStarted"}\n{"type": "JobCompleted"}\n'
    assert err.getvalue() == "hello\n"
