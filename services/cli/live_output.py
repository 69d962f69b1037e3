"""`baker dispatch --wait`: a job's live output (DESIGN §10), printed as it arrives.

Readable mode: model text and stdout go to stdout as they are, stderr to stderr, so the text
grows in place between the timeline lines (a line left open is ended before the next
timeline line). `--json`: stdout stays one JSON event per line, exactly as before, and all
live output goes to stderr as plain text.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


class OutputPrinter:
    def __init__(self, as_json: bool, out: TextIO | None = None, err: TextIO | None = None):
        self._as_json = as_json
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._open: set[int] = set()  # ids of the streams whose last write left a line open

    def output(self, doc: dict[str, Any]) -> None:
        """One `event: output` frame's data; anything but text data is ignored."""
        data = doc.get("data")
        if not isinstance(data, str) or not data:
            return
        target = self._err if self._as_json or doc.get("stream") == "stderr" else self._out
        target.write(data)
        target.flush()
        if data.endswith("\n"):
            self._open.discard(id(target))
        else:
            self._open.add(id(target))

    def line(self, text: str) -> None:
        """A line of the timeline (or a JSON event) on stdout, at the start of a line."""
        self._end_line(self._out)
        print(text, file=self._out, flush=True)

    def end(self) -> None:
        """End lines left open, before the closing words."""
        self._end_line(self._out)
        self._end_line(self._err)

    def _end_line(self, target: TextIO) -> None:
        if id(target) in self._open:
            self._open.discard(id(target))
            target.write("\n")
            target.flush()
