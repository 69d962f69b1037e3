"""Values that look like credentials, masked (DESIGN §12): pure functions over strings and
JSON-like values, applied wherever text leaves a process (events, reports, live output, logs).

What is masked, keeping what says which kind of secret it was (a prefix, a name, the user and
host of a URL) and replacing the secret itself with `REDACTED`:

- API keys `sk-ant-…` (Anthropic), `sk-…`/`sk-proj-…` (OpenAI: 20+ characters mixing capitals
  and digits, so a slug like `sk-learn-more-about-it` stays), AWS access key ids `AKIA…`/`ASIA…`,
  an AWS secret access key after one (or after a name such as `aws_secret_access_key=`,
  `"SecretAccessKey":`), GitHub tokens `ghp_ gho_ ghu_ ghs_ ghr_ github_pat_`, Slack tokens
  `xoxb- xoxp- xoxa- xoxo- xoxr- xoxs- xoxe- xapp-`, JWTs `eyJ….eyJ….…`;
- `Authorization: <scheme> <value>` and `Bearer <token>` (a token of 12+ characters holding a
  digit or `.-_~+/`, so "Bearer authentication" stays);
- passwords in URLs, `scheme://user:password@host` → `scheme://user:***@host`;
- private key blocks `-----BEGIN … PRIVATE KEY-----` to their `-----END …-----` (to the end of
  the base64 when the block is cut);
- `NAME=value` where NAME is upper case with a part PASSWORD, PASSWD, SECRET, TOKEN, API_KEY,
  APIKEY, ACCESS_KEY or PRIVATE_KEY (the output of `env`);
- in JSON-like values, the string value of a key whose name (lower case, without `_`/`-`) ends in
  password, passwd, secret, token, apikey, accesskey, privatekey, authorization or cookie.

Not masked: hex strings of any length (job ids, sha256 hashes, commit ids), UUIDs, ordinary
words and base64 without one of the prefixes above. A bare 40-character AWS-secret-looking
string is masked only beside an access key id or a secret-access-key name: alone it cannot be
told from a hash or an id.

Cost: ordinary text is looked at by `in` for a few fixed fragments per kind of secret; only a
kind whose fragment is there has its pattern run, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

REDACTED: Final = "***"

_WORD = r"[A-Za-z0-9_-]"  # a character of a base64url token
# Where a token may start: not inside a word, but after an escape such as the `\n` of a
# string written as JSON or with repr() (`"a\nsk-ant-…"`).
_START = r"(?:(?<![A-Za-z0-9_])|(?<=\\[nrt]))"


def _after(n: int) -> str:
    """`_START`, checked after the `n` characters of a fixed prefix: a pattern that begins
    with its literal prefix is searched for fast (by the prefix), one that begins with a
    look-behind is tried at every position."""
    return rf"(?:(?<![A-Za-z0-9_].{{{n}}})|(?<=\\[nrt].{{{n}}}))"


@dataclass(frozen=True, slots=True)
class _Rule:
    """One kind of secret: fragments one of which it always holds (looked for first, with
    `in`: cheap), and its pattern, whose group 1 is kept before the marker."""

    hints: tuple[str, ...]
    pattern: re.Pattern[str]
    folded: bool = False  # the hints are looked for in the lower-cased text
    needs: str = ""  # a character it always holds as well


def _rule(hints: str, pattern: str, *, folded: bool = False, needs: str = "") -> _Rule:
    return _Rule(tuple(hints.split()), re.compile(pattern, re.DOTALL), folded, needs)


# In this order: a private key block first (it may hold anything), a pair before its key id,
# an `Authorization:` before the `Bearer` it may hold, a URL before the token in its password.
_RULES: Final = (
    _rule(
        "PRIVATE",
        r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----)(?!\*\*\*)"
        r"(?:.*?(-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----)|[A-Za-z0-9+/=\s:,.-]*)",
    ),
    _rule(
        "AKIA ASIA",
        rf"((?:AKIA|ASIA)){_after(4)}[A-Z0-9]{{16}}"
        r"(?:((?:[\s,;:|\"'=]|\\[nrt]){1,8})[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+]))?(?![A-Za-z0-9])",
    ),
    _rule(
        "secretaccess secret_access sessiontoken session_token",
        rf"((?i:{_START}(?:aws_?)?secret_?access_?key|{_START}(?:aws_?)?session_?token)"
        r"[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{16,}",
        folded=True,
    ),
    _rule(
        "authorization",
        rf"((?i:{_START}authorization)[\"']?\s*[:=]\s*[\"']?"
        r"(?>(?:(?i:bearer|basic|token|digest)\s+)?))(?!\*\*\*)[^\s\"',;]+",
        folded=True,
    ),
    _rule(
        "bearer",
        rf"({_START}(?i:bearer)\s+)(?=[A-Za-z0-9._~+/-]*[0-9._~+/-])[A-Za-z0-9._~+/-]{{12,}}=*",
        folded=True,
    ),
    _rule(
        "://",
        rf"({_START}[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s\"'<>]*:)(?!\*\*\*@)[^@/?#\s\"'<>]+(?=@)",
        needs="@",
    ),
    _rule("sk-ant-", rf"(sk-ant-{_after(7)}(?:(?:api|admin)\d\d-)?){_WORD}{{16,}}"),
    _rule(  # after the Anthropic rule: what it masked has no capital left to match here
        "sk-",
        rf"(sk-{_after(3)}(?:proj-|svcacct-|admin-)?)(?={_WORD}*[0-9])(?={_WORD}*[A-Z])"
        rf"{_WORD}{{20,}}",
    ),
    _rule(
        "ghp_ gho_ ghu_ ghs_ ghr_ github_pat_",
        rf"(gh[pousr]_{_after(4)}|github_pat_{_after(11)})[A-Za-z0-9_]{{20,}}",
    ),
    _rule("xox xapp-", rf"(xox[abposre]-{_after(5)}|xapp-{_after(5)})[A-Za-z0-9-]{{10,}}"),
    _rule("eyJ", rf"(eyJ{_after(3)}){_WORD}{{4,}}\.eyJ{_WORD}{{4,}}\.{_WORD}*"),
    _rule(
        "PASSWORD PASSWD SECRET TOKEN API_KEY APIKEY ACCESS_KEY PRIVATE_KEY",
        rf"({_START}(?:[A-Z0-9_]*?_)?"
        r"(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY)(?:_[A-Z0-9_]*)?=)"
        r"(?!\*\*\*)[^\s\"']+",
        needs="=",
    ),
)


# What a masked value looks like (a kept prefix, then the marker): how a stored payload is
# known to have been masked, without mistaking ordinary `***` (markdown, say) for a mask.
_MASKED: Final = re.compile(
    r"\bsk-[a-z0-9-]*\*\*\*|\b(?:AKIA|ASIA)[A-Z0-9]*(?:(?:[\s,;:|\"'=]|\\[nrt]){1,8})?\*\*\*|"
    r"(?i:secret_?access_?key|session_?token)[\"']?\s*[:=]\s*[\"']?\*\*\*|"
    r"\b(?:gh[pousr]_|github_pat_|xox[abposre]-|xapp-|eyJ)\*\*\*|"
    r"(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?:(?i:bearer|basic|token|digest)\s+)?\*\*\*|"
    r"(?i:bearer)\s+\*\*\*|://[^:/?#@\s\"'<>]*:\*\*\*@|PRIVATE KEY[A-Z ]*-----\*\*\*|"
    r"(?<![A-Za-z0-9_])(?:[A-Z0-9_]*?_)?(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|"
    r"PRIVATE_KEY)(?:_[A-Z0-9_]*)?=\*\*\*"
)

_SECRET_KEY_ENDINGS: Final = (
    "password", "passwd", "secret", "token", "apikey", "accesskey", "privatekey",
    "authorization", "cookie",
)  # fmt: skip


def _fewest(hints: set[str]) -> tuple[str, ...]:
    """`hints` without those that hold another (finding `sk-` is enough to look further)."""
    return tuple(sorted(h for h in hints if not any(g != h and g in h for g in hints)))


_ALL_HINTS: Final = _fewest(
    {hint.lower() for rule in _RULES for hint in rule.hints} | set(_SECRET_KEY_ENDINGS)
)


def _masked(match: re.Match[str]) -> str:
    """The kept prefix, the marker, and what follows it (a key block's end line; the gap
    and a marker for the secret beside an AWS key id)."""
    groups = match.groups()
    kept = next(group for group in groups if group)
    rest = groups[groups.index(kept) + 1 :]
    tail = rest[0] if rest else None
    if tail is None:
        return kept + REDACTED
    return kept + REDACTED + (tail + REDACTED if kept in ("AKIA", "ASIA") else tail)


def _present(rule: _Rule, text: str, folded: str) -> bool:
    """Whether `text` (`folded`: lower-cased) holds a fragment of `rule`: only then can it
    hold its secret."""
    if rule.needs and rule.needs not in text:
        return False
    where = folded if rule.folded else text
    return any(hint in where for hint in rule.hints)


def _hint_of_any(folded: str) -> bool:
    """The cheap look first: whether lower-cased text has a fragment of any kind of secret or
    of a secret-named key (most text has none, and is done with)."""
    return any(hint in folded for hint in _ALL_HINTS)


def redact_text(text: str) -> str:
    """`text` with every credential-looking value masked (the same string when none is)."""
    folded = text.lower()
    if not _hint_of_any(folded):
        return text
    for rule in _RULES:
        if _present(rule, text, folded):
            masked = rule.pattern.sub(_masked, text)
            if masked != text:
                text, folded = masked, masked.lower()
    return text


def secret_key(name: str) -> bool:
    """Whether a JSON key names a secret (`password`, `accessToken`, `client_secret`, …)."""
    folded = name.lower().replace("_", "").replace("-", "")
    return folded.endswith(_SECRET_KEY_ENDINGS)


def _may_hold_secret(value: Any) -> bool:
    """False when a container surely holds no secret: its JSON text (one `orjson` call) has
    no hint of any kind of secret nor of a secret-named key. True when unsure."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        return True
    return _hint_of_any(text.lower())


def redact_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings, numbers) with secrets masked: strings by
    `redact_text`, the string values of secret-named keys wholly. Unchanged parts are the
    same objects; nothing is copied when nothing is masked."""
    if isinstance(value, dict | list | tuple) and not _may_hold_secret(value):
        return value
    return _redact_walk(value)


def _redact_walk(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        out = {}
        changed = False
        for key, item in value.items():
            if isinstance(key, str) and isinstance(item, str) and item and secret_key(key):
                new: Any = REDACTED
            else:
                new = _redact_walk(item)
            changed = changed or new is not item
            out[key] = new
        return out if changed else value
    if isinstance(value, list | tuple):
        items = [_redact_walk(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


def holds_masks(value: Any) -> bool:
    """Whether a JSON-like value has a value masked by `redact_value` in it."""
    if isinstance(value, str):
        return REDACTED in value and _MASKED.search(value) is not None
    if isinstance(value, dict):
        return any(
            (isinstance(key, str) and item == REDACTED and secret_key(key)) or holds_masks(item)
            for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return any(holds_masks(item) for item in value)
    return False


def unfinished_at(text: str) -> int:
    """Where the part of `text` that a later chunk could still turn into a secret begins
    (`len(text)` when none): its last three words when it does not end a line (a token cut
    in two, or `Authorization: Bearer` waiting for its token), or an unended private key
    block; never inside a secret (a name and its value stay together). Live output holds
    that part back until more comes."""
    cut = len(text)
    begin = text.rfind("-----BEGIN ")
    if begin >= 0 and "-----END " not in text[begin:]:
        cut = begin
    if text and not text.endswith("\n"):
        line = text.rfind("\n") + 1
        words = [m.start() for m in re.finditer(r"\S+", text[line:])][-3:]
        if words:
            cut = min(cut, line + words[0])
    folded = text.lower()
    rules = [rule for rule in _RULES if _present(rule, text, folded)]
    moved = cut < len(text)
    while moved:
        moved = False
        for rule in rules:
            for match in rule.pattern.finditer(text):
                if match.start() < cut < match.end():
                    cut, moved = match.start(), True
    return cut
