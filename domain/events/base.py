"""Event envelope, the type registry, the stored JSON form (DESIGN §4) and upcasting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from domain.ids import AGGREGATES

JsonDict = dict[str, Any]


class DomainEvent(BaseModel):
    """Base of every typed event payload (the envelope's `data`)."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True
    )

    aggregate: ClassVar[str] = ""  # "" means: valid on any aggregate
    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def to_data(self) -> JsonDict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One stored event: identity, position in its aggregate, time, schema and payload."""

    event_id: str
    aggregate: str
    aggregate_id: str
    version: int
    occurred_at: datetime
    data: DomainEvent
    trace_id: str | None = None
    causation_id: str | None = None
    generation: int | None = None  # fencing generation of the Brain that appended it
    # The hash chain (DESIGN §12): None on events stored before it (see `domain.events.chain`).
    prev_hash: str | None = None  # the aggregate's previous event's `hash`, "" for the first
    hash: str | None = None  # sha256 of this event's canonical bytes, hex

    @property
    def type(self) -> str:
        return self.data.type_name()

    @property
    def schema(self) -> int:
        return self.data.schema_version


class EventDecodeError(ValueError):
    """A stored event that cannot be read: bad JSON, unknown type, or invalid fields."""


_REGISTRY: dict[str, type[DomainEvent]] = {}
Upcaster = Callable[[JsonDict], JsonDict]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register(*classes: type[DomainEvent]) -> None:
    """Make event classes readable by name; a name may be registered once."""
    for cls in classes:
        name = cls.type_name()
        if _REGISTRY.get(name, cls) is not cls:
            raise ValueError(f"event type {name} registered twice")
        _REGISTRY[name] = cls


def event_types() -> dict[str, type[DomainEvent]]:
    """Every registered event type by name."""
    return dict(_REGISTRY)


def upcaster(type_name: str, from_schema: int) -> Callable[[Upcaster], Upcaster]:
    """Register `fn(data) -> data` that lifts `type_name` from `from_schema` to the next."""

    def wrap(fn: Upcaster) -> Upcaster:
        key = (type_name, from_schema)
        if key in _UPCASTERS:
            raise ValueError(f"upcaster for {type_name} schema {from_schema} registered twice")
        _UPCASTERS[key] = fn
        return fn

    return wrap


def upcast(type_name: str, schema: int, data: JsonDict) -> tuple[JsonDict, int]:
    """Apply the upcaster chain until no upcaster is registered for the schema."""
    while (fn := _UPCASTERS.get((type_name, schema))) is not None:
        data = fn(dict(data))
        schema += 1
    return data, schema


def format_time(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, microseconds kept."""
    if moment.utcoffset() != _ZERO:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_ZERO = timedelta(0)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time given by a client, as an aware UTC datetime (one without an offset is
    taken as UTC); `ValueError` if it is not a time or leaves the calendar when moved to UTC."""
    try:
        moment = datetime.fromisoformat(text)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except OverflowError:  # years near 1 or 9999 with an offset
        raise ValueError(f"{text!r} is out of range") from None


def to_document(env: Envelope) -> JsonDict:
    """The stored JSON form of DESIGN §4 as a dict."""
    doc: JsonDict = {
        "eventId": env.event_id,
        "type": env.type,
        "aggregate": env.aggregate,
        "aggregateId": env.aggregate_id,
        "version": env.version,
        "occurredAt": format_time(env.occurred_at),
        "schema": env.schema,
        "data": env.data.to_data(),
    }
    if env.trace_id is not None:
        doc["traceId"] = env.trace_id
    if env.causation_id is not None:
        doc["causationId"] = env.causation_id
    if env.generation is not None:
        doc["generation"] = env.generation
    if env.prev_hash is not None:
        doc["prevHash"] = env.prev_hash
    if env.hash is not None:
        doc["hash"] = env.hash
    return doc


def envelope_head(env: Envelope) -> JsonDict:
    """The stored document's members other than `data`, `prevHash` and `hash` (shared by the
    plain encoding and the hash chain's seal)."""
    head: JsonDict = {
        "eventId": env.event_id,
        "type": env.type,
        "aggregate": env.aggregate,
        "aggregateId": env.aggregate_id,
        "version": env.version,
        "occurredAt": env.occurred_at,
        "schema": env.schema,
    }
    if env.trace_id is not None:
        head["traceId"] = env.trace_id
    if env.causation_id is not None:
        head["causationId"] = env.causation_id
    if env.generation is not None:
        head["generation"] = env.generation
    return head


def encode_event(env: Envelope) -> bytes:
    """Serialise an envelope to the bytes stored on `baker.events.<aggregate>.<id>`.

    The same JSON as `to_document(env)`, built with compiled serializers (pydantic's for the
    payload, orjson for the envelope): this runs once per append.
    """
    head = envelope_head(env)
    if env.prev_hash is not None:
        head["prevHash"] = env.prev_hash
    if env.hash is not None:
        head["hash"] = env.hash
    data = env.data.model_dump_json(by_alias=True, exclude_none=True).encode()
    return orjson.dumps(head, option=orjson.OPT_UTC_Z)[:-1] + b',"data":' + data + b"}"


_REQUIRED: Final = {
    "eventId": str,
    "type": str,
    "aggregate": str,
    "aggregateId": str,
    "version": int,
    "occurredAt": str,
    "data": dict,
}


def decode_event(raw: bytes | str) -> Envelope:
    """Parse stored bytes into an envelope, upcasting old schemas; raise `EventDecodeError`."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError(f"event is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EventDecodeError(f"event must be a JSON object, got {type(doc).__name__}")
    return from_document(doc)


def from_document(doc: JsonDict) -> Envelope:
    """Build an envelope from its JSON document; raise `EventDecodeError` naming the field."""
    get = doc.get
    # One combined check on the hot path (every projector read); the detailed one names the
    # field only when something is wrong.
    if not (
        type(get("eventId")) is str and type(get("type")) is str
        and type(get("aggregate")) is str and type(get("aggregateId")) is str
        and type(get("version")) is int and type(get("occurredAt")) is str
        and type(get("data")) is dict
    ):  # fmt: skip
        _explain(doc)
    type_name: str = doc["type"]
    cls = _REGISTRY.get(type_name)
    if cls is None:
        raise EventDecodeError(f"type: unknown event type {type_name!r}")
    if doc["aggregate"] not in AGGREGATES or (cls.aggregate and cls.aggregate != doc["aggregate"]):
        raise EventDecodeError(f"aggregate: {doc['aggregate']!r} is wrong for {type_name}")
    schema = doc.get("schema", 1)
    if not isinstance(schema, int) or schema < 1:
        raise EventDecodeError(f"schema: {schema!r} is not a positive integer")
    data, schema = upcast(type_name, schema, doc["data"])
    if schema != cls.schema_version:
        raise EventDecodeError(
            f"schema: {type_name} schema {schema} is unknown to this reader "
            f"(it knows {cls.schema_version})"
        )
    try:
        event = cls.model_validate(data)
        occurred = datetime.fromisoformat(doc["occurredAt"])
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "data"
        raise EventDecodeError(f"data.{field}: {err['msg']}") from None
    except ValueError as exc:
        raise EventDecodeError(f"occurredAt: {exc}") from None
    return Envelope(
        event_id=doc["eventId"],
        aggregate=doc["aggregate"],
        aggregate_id=doc["aggregateId"],
        version=doc["version"],
        occurred_at=occurred,
        data=event,
        trace_id=_opt_str(doc, "traceId"),
        causation_id=_opt_str(doc, "causationId"),
        generation=_opt_int(doc, "generation"),
        prev_hash=_opt_str(doc, "prevHash"),
        hash=_opt_str(doc, "hash"),
    )


def _explain(doc: JsonDict) -> None:
    for key, kind in _REQUIRED.items():
        value = doc.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise EventDecodeError(f"{key}: missing or not a {kind.__name__}")


def _opt_int(doc: JsonDict, key: str) -> int | None:
    value = doc.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise EventDecodeError(f"{key}: must be an integer")


def _opt_str(doc: JsonDict, key: str) -> str | None:
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    raise EventDecodeError(f"{key}: must be a string")
