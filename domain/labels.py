"""Job labels (`labels {str: str}`, DESIGN §11): the rules a label must follow, and the
`key:value` filters that select jobs by them.

Keys look like Kubernetes label keys (`team`, `app.example.com/tier`), so they stay readable in
URLs and shell commands and never contain the `:` or `=` that separate a filter's key from its
value. Values are short plain words; an empty value is allowed (a label used as a flag).
"""

from __future__ import annotations

import re
from typing import Any, Final

from domain.errors import FieldError

MAX_LABELS: Final = 32
MAX_KEY_CHARS: Final = 63
MAX_VALUE_CHARS: Final = 128
_KEY: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?")
_VALUE: Final = re.compile(r"[A-Za-z0-9._:/@+,=-]*")
KEY_RULE: Final = (
    f"1-{MAX_KEY_CHARS} letters, digits, '.', '_', '/' or '-', starting and ending with a "
    "letter or digit"
)
VALUE_RULE: Final = (
    f"at most {MAX_VALUE_CHARS} letters, digits or any of . _ : / @ + , = - (no spaces)"
)


def check_key(key: Any, field: str) -> str:
    if not isinstance(key, str) or len(key) > MAX_KEY_CHARS or not _KEY.fullmatch(key):
        raise FieldError(field, f"label key {key!r} must be {KEY_RULE}")
    return key


def check_value(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise FieldError(field, "a label value must be a string")
    if len(value) > MAX_VALUE_CHARS or not _VALUE.fullmatch(value):
        raise FieldError(field, f"label value {value!r} must be {VALUE_RULE}")
    return value


def check_labels(labels: Any, field: str = "labels") -> dict[str, str]:
    """The labels if every key and value follows the rules; else `FieldError` naming the
    label (`labels.team`)."""
    if not isinstance(labels, dict):
        raise FieldError(field, "must be an object of string keys and string values")
    if len(labels) > MAX_LABELS:
        raise FieldError(field, f"at most {MAX_LABELS} labels, not {len(labels)}")
    out: dict[str, str] = {}
    for key, value in labels.items():
        name = f"{field}.{key}"
        out[check_key(key, name)] = check_value(value, name)
    return out


def parse_filter(text: str, separator: str = ":", field: str = "label") -> tuple[str, str]:
    """A filter `key:value` (the API's `?label=`) or `key=value` (the CLI's `--label`) as
    (key, value); `FieldError` naming `field` when it is not one."""
    key, sep, value = text.partition(separator)
    if not sep:
        raise FieldError(field, f"{text!r} is not key{separator}value")
    return check_key(key, field), check_value(value, field)


def parse_filters(
    texts: list[str], separator: str = ":", field: str = "label"
) -> tuple[tuple[str, str], ...]:
    """Every filter (they all must hold); the same key twice with two values matches nothing,
    which is what the user asked for, so it is kept rather than refused."""
    if len(texts) > MAX_LABELS:
        raise FieldError(field, f"at most {MAX_LABELS} label filters, not {len(texts)}")
    return tuple(dict.fromkeys(parse_filter(t, separator, field) for t in texts))
