"""Five-field cron expressions (minute hour day-of-month month day-of-week) in a time zone.

Fields take `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n` and `a-b/n`, and English
names for months and weekdays (`JAN`, `MON`; Sunday is 0 or 7). As in Vixie cron, when both
day fields are restricted a day matches either. Slots are wall-clock minutes in the zone: a
minute skipped by a DST jump does not exist and is not a slot; a minute that occurs twice (the
clock set back) is one slot, at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import FieldError

_MONTH_NAMES: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")  # fmt: skip
_MONTHS: Final = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAYS: Final = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_NO_NAMES: Final[dict[str, int]] = {}
_FIELDS: Final[tuple[tuple[str, int, int, dict[str, int]], ...]] = (
    ("minute", 0, 59, _NO_NAMES),
    ("hour", 0, 23, _NO_NAMES),
    ("day of month", 1, 31, _NO_NAMES),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_HORIZON_DAYS: Final = 366 * 5  # e.g. `0 0 29 2 *` fires once in four years; none: an error


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month was `*`
    any_weekday: bool  # day of week was `*`

    def _day_matches(self, day: datetime) -> bool:
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first slot strictly after `after` (an aware time), as an aware UTC time."""
        local = after.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
        day = local.replace(hour=0, minute=0)
        for _ in range(_HORIZON_DAYS):
            if day.month in self.months and self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        wall = day.replace(hour=hour, minute=minute)
                        if wall <= local:
                            continue
                        slot = _existing(wall, zone)
                        if slot is not None and slot > after:
                            return slot
            day += timedelta(days=1)
        raise FieldError("cron", f"{self.expression!r} never fires")


def _existing(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall-clock time, None if the zone skips it."""
    first = wall.replace(tzinfo=zone, fold=0)
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return first.astimezone(UTC) if back == wall else None


def parse_cron(expression: str) -> Cron:
    """A cron expression, or `FieldError("cron", ...)` naming the bad field."""
    parts = expression.split()
    if len(parts) != 5:
        raise FieldError(
            "cron", f"needs 5 fields (minute hour day month weekday), got {len(parts)}"
        )
    sets = [_field(text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(expression, sets[0], sets[1], sets[2], sets[3], weekdays,
                parts[2] == "*", parts[4] == "*")  # fmt: skip


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        values |= _item(item, name, low, high, names)
    return frozenset(values)


def _item(item: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    base, _, step_text = item.partition("/")
    step = _number(step_text, name, names, 1, high) if step_text else 1
    if base == "*":
        first, last = low, high
    elif "-" in base:
        a, _, b = base.partition("-")
        first, last = _number(a, name, names, low, high), _number(b, name, names, low, high)
        if first > last:
            raise FieldError("cron", f"{name}: range {base!r} runs backwards")
    else:
        first = _number(base, name, names, low, high)
        last = high if step_text else first
    return set(range(first, last + 1, step))


def _number(text: str, name: str, names: dict[str, int], low: int, high: int) -> int:
    value = names.get(text.upper())
    if value is None:
        if not text.isdigit():
            raise FieldError("cron", f"{name}: {text!r} is not a number or a name")
        value = int(text)
    if not low <= value <= high:
        raise FieldError("cron", f"{name}: {value} is outside {low}-{high}")
    return value


def zone_of(name: str | None) -> ZoneInfo:
    """The IANA zone named (UTC when None); `FieldError("timezone", ...)` when unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError("timezone", f"{name!r} is not a known IANA time zone") from None
