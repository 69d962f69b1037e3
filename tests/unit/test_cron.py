"""Cron expressions in a time zone (DESIGN §11)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.cron import parse_cron, zone_of
from domain.errors import FieldError

UTC_ZONE = zone_of("UTC")
BERLIN = zone_of("Europe/Berlin")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def slots(expr: str, start: str, n: int, zone: str = "UTC") -> list[str]:
    cron, tz, out, t = parse_cron(expr), zone_of(zone), [], at(start)
    for _ in range(n):
        t = cron.next_after(t, tz)
        out.append(t.isoformat())
    return out


def test_every_minute_and_steps_and_lists() -> None:
    assert slots("* * * * *", "2026-12-05T10:00:30", 2) == [
        "2026-12-05T10:01:00+00:00", "2026-12-05T10:02:00+00:00"]  # fmt: skip
    assert slots("*/15 9-10 * * *", "2026-12-05T09:50:00", 3) == [
        "2026-12-05T10:00:00+00:00",
        "2026-12-05T10:15:00+00:00",
        "2026-12-05T10:30:00+00:00",
    ]
    assert slots("0 3,15 * * *", "2026-12-05T04:00:00", 2) == [
        "2026-12-05T15:00:00+00:00", "2026-12-06T03:00:00+00:00"]  # fmt: skip


def test_names_and_sunday_as_0_or_7_and_either_day_field() -> None:
    assert slots("0 8 * * MON-FRI", "2026-12-05T00:00:00", 1) == ["2026-12-07T08:00:00+00:00"]
    assert slots("0 0 * * 7", "2026-12-05T00:00:00", 1) == slots(
        "0 0 * * SUN", "2026-12-05T00:00:00", 1
    )
    # day 1 of the month OR a Monday (Vixie cron): Monday the 7th comes before the 1st
    assert slots("0 0 1 * MON", "2026-12-05T00:00:00", 1) == ["2026-12-07T00:00:00+00:00"]
    assert slots("0 0 29 FEB *", "2026-12-05T00:00:00", 1) == ["2028-02-29T00:00:00+00:00"]


def test_a_zone_s_wall_clock_decides_and_dst_is_respected() -> None:
    # 03:00 in Berlin: 02:00 UTC in summer, 02:00 UTC... in winter 03:00 CET = 02:00 UTC
    assert slots("0 3 * * *", "2026-07-01T00:00:00", 1, "Europe/Berlin") == [
        "2026-07-01T01:00:00+00:00"
    ]
    assert slots("0 3 * * *", "2026-12-05T00:00:00", 1, "Europe/Berlin") == [
        "2026-12-05T02:00:00+00:00"
    ]
    # 02:30 does not exist on 2026-03-29 in Berlin (02:00 -> 03:00): no slot that day
    assert slots("30 2 * * *", "2026-03-28T12:00:00", 2, "Europe/Berlin") == [
        "2026-03-30T00:30:00+00:00", "2026-03-31T00:30:00+00:00"]  # fmt: skip
    # 02:30 happens twice on 2026-10-25 (03:00 -> 02:00): one slot, the first
    assert slots("30 2 * * *", "2026-10-24T12:00:00", 2, "Europe/Berlin") == [
        "2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]  # fmt: skip


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("* * * *", "needs 5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 5-2 * * *", "hour: range '5-2' runs backwards"),
        ("* * * FOO *", "month: 'FOO' is not a number or a name"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_a_bad_expression_names_its_field(expr: str, message: str) -> None:
    with pytest.raises(FieldError, match=message):
        cron = parse_cron(expr)
        cron.next_after(at("2026-01-01T00:00:00"), UTC_ZONE)


def test_an_unknown_zone_is_named() -> None:
    with pytest.raises(FieldError, match="timezone: 'Mars/Olympus' is not a known IANA"):
        zone_of("Mars/Olympus")
