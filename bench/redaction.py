"""Redaction bench (issue 17): what masking credentials costs where text leaves a process.

`redact_text` over 8 KiB of text (ordinary words; words with URLs, which always get a full
look for passwords; one key among them), `redact_value` over a command job's result, and a
worker's result message written with and without the masking (`encode_result`), each the
median of `rounds` runs of many calls, in this process.

Target: ordinary text well under 50 ns a character; a result message under 10 µs more.
"""

from __future__ import annotations

import random
import string
import timeit
from typing import Any

from bench.common import machine, markdown_table, median, progress, save
from domain.redaction import redact_text, redact_value
from domain.wire import encode_result

SIZE = 8192


def _texts() -> dict[str, str]:
    rng = random.Random(17)  # words for a bench, not secrets
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(500)]
    plain = " ".join(rng.choices(words, k=2000))[:SIZE]
    urls = " ".join(
        rng.choice(words) if rng.random() > 0.05 else "https://example.com/a/b?q=1"
        for _ in range(2000)
    )[:SIZE]
    key = plain[: SIZE // 2] + " sk-ant-api03-" + "Qw3_e-R7" * 12 + "AA " + plain[SIZE // 2 :]
    return {"8 KiB of words": plain, "8 KiB with URLs": urls, "8 KiB with one key": key[:SIZE]}


RESULT: dict[str, Any] = {
    "exitCode": 0, "stdout": "Filesystem Size Used Avail Use% Mounted on\n/dev/sda1 40G 12G\n",
    "stderr": "", "timedOut": False,
}  # fmt: skip


def _per_call(fn: Any, number: int) -> float:
    return timeit.timeit(fn, number=number) / number


async def run(rounds: int = 5) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for name, text in _texts().items():
        progress(f"redact_text: {name}")
        took = median([_per_call(lambda t=text: redact_text(t), 300) for _ in range(rounds)])
        rows.append({"what": f"redact_text, {name}", "us": took * 1e6,
                     "ns_per_char": took / len(text) * 1e9})  # fmt: skip
    progress("redact_value and encode_result")
    value = median([_per_call(lambda: redact_value(RESULT), 20_000) for _ in range(rounds)])
    rows.append({"what": "redact_value, a command result", "us": value * 1e6})
    plain = median([_per_call(lambda: encode_result("job-1", "completed", result=RESULT), 20_000)
                    for _ in range(rounds)])  # fmt: skip
    masked = median([_per_call(lambda: encode_result("job-1", "completed",
                                                     result=redact_value(RESULT)), 20_000)
                     for _ in range(rounds)])  # fmt: skip
    rows.append({"what": "encode_result (baseline, not masked)", "us": plain * 1e6})
    rows.append({"what": "encode_result of a masked result", "us": masked * 1e6})
    doc = {"machine": machine(), "rounds": rounds, "rows": rows}
    save("redaction", doc)
    return doc


def report(doc: dict[str, Any]) -> str:
    rows = [
        (r["what"], f"{r['us']:.1f}", f"{r['ns_per_char']:.1f}" if "ns_per_char" in r else "")
        for r in doc["rows"]
    ]
    return markdown_table(rows, ("what", "µs per call", "ns per character"))
