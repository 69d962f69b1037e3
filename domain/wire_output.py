"""Live output of a running job (DESIGN §10): worker → whoever listens, on core NATS
`baker.jobs.output.<jobId>`, never stored.

`{"id", "attempt", "seq", "stream": "text"|"stdout"|"stderr", "data"}`: pure encode and decode,
lenient about unknown fields like every wire message, strict about values. `seq` counts a
job attempt's messages from 1, so a listener sees a gap (a lost message: core NATS promises
nothing) or a new attempt starting again.
"""

from __future__ import annotations

from typing import Final, Literal

import orjson
from pydantic import Field

from domain.ids import check_id
from domain.wire import _ID, WireMessage, decode

OutputStream = Literal["text", "stdout", "stderr"]
OUTPUT_PREFIX: Final = "baker.jobs.output"
MAX_OUTPUT_DATA: Final = 65_536  # characters of one message (the worker sends far less)


class OutputMessage(WireMessage):
    id: str = _ID
    attempt: int = Field(ge=1, le=1000)
    seq: int = Field(ge=1)
    stream: OutputStream
    data: str = Field(max_length=MAX_OUTPUT_DATA)


def output_subject(job_id: str) -> str:
    """The core NATS subject of one job's live output (the id is checked)."""
    return f"{OUTPUT_PREFIX}.{check_id(job_id, 'job id')}"


def encode_output(job_id: str, attempt: int, seq: int, stream: OutputStream, data: str) -> bytes:
    """One output message's bytes, written straight from its fields (many per job: no model
    is built for each; `OutputMessage(...).encode()` gives the same bytes, tested)."""
    doc = {"id": job_id, "attempt": attempt, "seq": seq, "stream": stream, "data": data}
    return orjson.dumps(doc)


def decode_output(raw: bytes | str) -> OutputMessage:
    """An output message; `WireError` names the first bad field."""
    return decode(OutputMessage, raw)
