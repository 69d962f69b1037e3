"""Turning pydantic validation errors into one message that names the field."""

from __future__ import annotations

from pydantic import ValidationError


class FieldError(ValueError):
    """Bad input: `field` names what is wrong, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def first_error(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    """The dotted field path and message of the first error in `exc`."""
    err = exc.errors()[0]
    parts = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    # Discriminated unions add the tag as a path element: drop it so users see payload.x.
    if len(parts) > 1 and parts[0] in ("agent", "command", "http"):
        parts = parts[1:]
    path = ".".join(parts) or "body"
    message = err["msg"].removeprefix("Value error, ")  # our validators' own words
    if err["type"] == "missing":
        message = "is required"
    elif err["type"] == "extra_forbidden":
        message = "is not a known field"
    return (f"{prefix}{path}", message)
