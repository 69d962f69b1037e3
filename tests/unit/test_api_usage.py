"""`GET /api/usage` refuses bad parameters with a 400 naming the parameter (in process, no
server: the refusal comes before any read)."""

from __future__ import annotations

import httpx
import pytest

from services.api.app import create_app
from services.api.context import ApiContext

TOKEN = "unit-token"


def api() -> httpx.AsyncClient:
    ctx = ApiContext(
        store=None, dispatcher=None, queue=None, read_model=None,  # type: ignore[arg-type]
        token=TOKEN,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    return httpx.AsyncClient(
        transport=transport, base_url="http://brain", headers={"Authorization": f"Bearer {TOKEN}"}
    )


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("groupBy=week", "groupBy", "groupBy: "),
        ("since=yesterday", "since", "since: 'yesterday' is not a date or an ISO-8601 time"),
        ("until=2026-13-01", "until", "until: '2026-13-01' is not a date"),
        ("since=2026-03-02&until=2026-03-01", "until", "until: is before since"),
    ],
)
async def test_bad_parameters_are_a_400_naming_them(query: str, field: str, reason: str) -> None:
    async with api() as c:
        answer = await c.get(f"/api/usage?{query}")
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["field"] == field
    assert body["error"].startswith(reason)
