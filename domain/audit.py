"""Verifying the hash chains of an exported (or live) event log (DESIGN §12).

Pure: stored event documents in, in log order, a verdict out. Each aggregate's events form one
chain: an event's `hash` must match its canonical bytes (`domain.events.chain`) and its
`prevHash` the `hash` of the aggregate's previous event ("" for the first). Events stored
before the chain existed have neither field: they are counted as unhashed, not broken, and the
chain starts at the first hashed event after them; an unhashed event after a hashed one is a
break (a hash was taken away).

The first event that breaks a chain is named with what happened to the log, as far as the
chain can tell: `changed` (its content no longer matches its hash), `reordered` (it comes
before an event it follows), `missing` (an event it follows is not there) or `inserted` (it
belongs to no place in the chain). What a chain cannot show is an aggregate's last events cut
off the end, or a whole aggregate left out: compare with the live log (`verify --live`) or a
count kept elsewhere for that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import orjson

from domain.events.chain import document_hash

BreakKind = Literal["changed", "missing", "reordered", "inserted"]


@dataclass(frozen=True, slots=True)
class Break:
    """The first event of a chain that does not hold, and how."""

    where: int  # its line in the file (or its stream sequence)
    event_id: str
    aggregate: str
    aggregate_id: str
    version: int | None
    kind: BreakKind
    detail: str


@dataclass(slots=True)
class _Entry:
    where: int
    event_id: str
    version: int | None
    hash: str | None  # None: stored before the chain (no hash, no prevHash)
    prev_hash: str | None
    intact: bool  # its hash matches its content


@dataclass
class Chain:
    """One aggregate's events as found in the log."""

    aggregate: str
    aggregate_id: str
    entries: list[_Entry] = field(default_factory=list)
    broken: Break | None = None

    @property
    def events(self) -> int:
        return len(self.entries)

    @property
    def unhashed(self) -> int:
        return sum(e.hash is None and e.prev_hash is None for e in self.entries)

    @property
    def head(self) -> str:
        """The hash of its last event ("" if it has none)."""
        return (self.entries[-1].hash or "") if self.entries else ""


@dataclass
class Verdict:
    chains: list[Chain]
    unreadable: list[Break]  # lines that are not event documents at all

    @property
    def first_break(self) -> Break | None:
        found = [c.broken for c in self.chains if c.broken is not None] + self.unreadable
        return min(found, key=lambda b: b.where, default=None)

    @property
    def ok(self) -> bool:
        return self.first_break is None

    @property
    def events(self) -> int:
        return sum(c.events for c in self.chains)

    @property
    def unhashed(self) -> int:
        return sum(c.unhashed for c in self.chains)


def verify(items: Iterable[tuple[int, bytes]], unit: str = "line") -> Verdict:
    """Check every chain in `items`: (line or sequence, stored document bytes), in log order;
    `unit` names what the numbers are ("line", "seq") in the details."""
    auditor = Auditor(unit)
    for where, raw in items:
        auditor.add(where, raw)
    return auditor.verdict()


class Auditor:
    """`verify` one document at a time (for a log read asynchronously); keeps per event only
    what the checks need, not the document."""

    def __init__(self, unit: str = "line") -> None:
        self.unit = unit
        self._chains: dict[tuple[str, str], Chain] = {}
        self._unreadable: list[Break] = []

    def add(self, where: int, raw: bytes) -> None:
        doc = _document(raw)
        if isinstance(doc, str):
            self._unreadable.append(Break(where, "", "", "", None, "changed", doc))
            return
        key = (str(doc["aggregate"]), str(doc["aggregateId"]))
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = Chain(*key)
        chain.entries.append(_entry(where, doc))

    def verdict(self) -> Verdict:
        for chain in self._chains.values():
            chain.broken = _check(chain, self.unit)
        return Verdict(list(self._chains.values()), list(self._unreadable))


def _document(raw: bytes) -> dict[str, object] | str:
    """The event document, or why it is not one."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(doc, dict):
        return f"not a JSON object but {type(doc).__name__}"
    for key in ("aggregate", "aggregateId"):
        if not isinstance(doc.get(key), str):
            return f"not an event document: {key} is missing or not a string"
    return doc


def _entry(where: int, doc: dict[str, object]) -> _Entry:
    event_id, version = doc.get("eventId"), doc.get("version")
    digest, prev = doc.get("hash"), doc.get("prevHash")
    intact = isinstance(digest, str) and document_hash(doc) == digest
    return _Entry(
        where,
        event_id if isinstance(event_id, str) else "",
        version if isinstance(version, int) and not isinstance(version, bool) else None,
        digest if isinstance(digest, str) else (None if "hash" not in doc else ""),
        prev if isinstance(prev, str) else (None if "prevHash" not in doc else ""),
        intact,
    )


def _check(chain: Chain, unit: str) -> Break | None:
    """The first event that breaks `chain`, or None."""
    entries = chain.entries
    last: _Entry | None = None  # the last hashed event that held
    last_version: int | None = None  # of the event before, hashed or not
    for n, entry in enumerate(entries):
        unhashed = entry.hash is None and entry.prev_hash is None
        if unhashed:
            if last is not None:
                return _break(chain, entry, "changed", "it has no hash, but an earlier event "
                              f"of its aggregate has ({unit} {last.where})")  # fmt: skip
            last_version = entry.version
            continue
        if not entry.intact:
            why = "its hash does not match its content" if entry.hash else "its hash is missing"
            return _break(chain, entry, "changed", why)
        expected = last.hash if last is not None else ""
        if entry.prev_hash == expected:
            last, last_version = entry, entry.version
            continue
        return _mislinked(chain, n, expected, last_version, unit)
    return None


def _mislinked(
    chain: Chain, n: int, expected: str | None, last_version: int | None, unit: str
) -> Break:
    """Why the `n`-th event's prevHash is not the hash of the event before it."""
    entries = chain.entries
    entry = entries[n]
    later = {e.hash: e for e in entries[n + 1 :] if e.hash}
    follows = later.get(entry.prev_hash or "")
    if follows is not None:
        why = f"it follows the event at {unit} {follows.where}, which comes after it"
        return _break(chain, entry, "reordered", why)
    if n + 1 < len(entries) and _continues(entries[n + 1], expected, last_version):
        return _break(chain, entry, "inserted", "it is not the event the next one follows")
    earlier = {e.hash: e for e in entries[:n] if e.hash}
    twin = earlier.get(entry.prev_hash or "")
    if twin is not None:
        return _break(chain, entry, "inserted", f"it follows the event at {unit} {twin.where}, as "
                      "the event after that one does: one of the two was inserted")  # fmt: skip
    base = last_version or 0
    if entry.version is not None and entry.version > base + 1:
        return _break(chain, entry, "missing", f"the events between versions {base} and "
                      f"{entry.version} are not there")  # fmt: skip
    if entry.prev_hash:
        return _break(chain, entry, "inserted", "it follows an event that is not there")
    return _break(chain, entry, "inserted", "it starts a chain again after hashed events")


def _continues(entry: _Entry, expected: str | None, last_version: int | None) -> bool:
    """Whether `entry` follows on from where its chain stood before the event just checked:
    it names that hash, or, where no hashed event came yet, it is the next event stored
    before the chain existed (unhashed, the next version)."""
    if entry.prev_hash == expected:
        return True
    unhashed = entry.hash is None and entry.prev_hash is None
    return unhashed and expected == "" and entry.version == (last_version or 0) + 1


def _break(chain: Chain, entry: _Entry, kind: BreakKind, detail: str) -> Break:
    return Break(
        entry.where, entry.event_id, chain.aggregate, chain.aggregate_id, entry.version, kind,
        detail,
    )  # fmt: skip
