"""Generated credentials of every kind `domain.redaction` masks, for tests that hide them in
what the system stores, sends and logs and then look for them.

A `Secret` is the text as it would appear (`text`) and the parts of it that must not appear
anywhere afterwards (`parts`). Every part mixes capitals and digits and is at least 8
characters long, and the surrounding text the tests generate is lower case: a part found in
the output is the secret leaking, never a coincidence.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from hypothesis import strategies as st

B64URL = string.ascii_letters + string.digits + "_-"
B64 = string.ascii_letters + string.digits + "+/"
ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Secret:
    kind: str
    text: str
    parts: tuple[str, ...]


def _mixed(alphabet: str, size: int) -> st.SearchStrategy[str]:
    """`size` characters of `alphabet`, starting with a capital and a digit (so they can be
    told from lower-case filler)."""
    return st.text(alphabet, min_size=size - 2, max_size=size - 2).map(lambda s: "Q7" + s)


def _ant(body: str) -> Secret:
    return Secret("anthropic", f"sk-ant-api03-{body}AA", (body,))


def _pem(lines: list[str]) -> Secret:
    body = "\n".join(lines)
    text = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    return Secret("private key", text, tuple(lines))


def _aws_pair(key_id: str, gap: str, secret: str) -> Secret:
    return Secret("aws pair", f"AKIA{key_id}{gap}{secret}", (key_id, secret))


def _jwt(header: str, claims: str, signature: str) -> Secret:
    return Secret("jwt", f"eyJ{header}.eyJ{claims}.{signature}", (header, claims, signature))


SECRETS: st.SearchStrategy[Secret] = st.one_of(
    _mixed(B64URL, 90).map(_ant),
    _mixed(B64URL, 48).map(lambda b: Secret("openai", f"sk-proj-{b}", (b,))),
    _mixed(ALNUM, 48).map(lambda b: Secret("openai", f"sk-{b}", (b,))),
    st.builds(
        _aws_pair, _mixed(UPPER_DIGITS, 16), st.sampled_from([" ", ":", ",", "\t"]), _mixed(B64, 40)
    ),
    _mixed(UPPER_DIGITS, 16).map(lambda b: Secret("aws key id", f"ASIA{b}", (b,))),
    _mixed(B64, 40).map(lambda b: Secret("aws name", f"aws_secret_access_key = {b}", (b,))),
    _mixed(ALNUM, 36).map(lambda b: Secret("github", f"ghp_{b}", (b,))),
    _mixed(ALNUM + "_", 82).map(lambda b: Secret("github pat", f"github_pat_{b}", (b,))),
    _mixed(ALNUM, 24).map(lambda b: Secret("slack", f"xoxb-1234567890-{b}", (b,))),
    _mixed(ALNUM + "._~+/-", 32).map(lambda b: Secret("bearer", f"Bearer {b}", (b,))),
    _mixed(ALNUM + "._~+/-", 8).map(
        lambda b: Secret("authorization", f"Authorization: Basic {b}", (b,))
    ),
    _mixed(ALNUM + "!$%&()+,;=.~-", 12).map(
        lambda b: Secret("url password", f"postgresql://app:{b}@db.internal:5432/jobs", (b,))
    ),
    st.lists(_mixed(B64, 64), min_size=1, max_size=4).map(_pem),
    st.builds(_jwt, _mixed(B64URL, 20), _mixed(B64URL, 40), _mixed(B64URL, 43)),
    _mixed(ALNUM + "!$%&()+,.~-", 12).map(lambda b: Secret("env", f"DB_PASSWORD={b}", (b,))),
)

FILLER = st.text(string.ascii_lowercase + " \n.,:;()[]{}", max_size=30)
BEFORE = st.sampled_from([" ", "\n", "=", ": ", '"', "'", "(", ", "])
AFTER = st.sampled_from([" ", "\n", ",", ";", ")", '"', "'", ". "])


@st.composite
def hidden(draw: st.DrawFn, secret: Secret | None = None) -> tuple[str, Secret]:
    """Text with a generated secret inside it, between separators (as it would be written)."""
    secret = secret or draw(SECRETS)
    text = draw(FILLER) + draw(BEFORE) + secret.text + draw(AFTER) + draw(FILLER)
    return text, secret


def leaked(secret: Secret, *outputs: str | bytes) -> list[str]:
    """The parts of `secret` found in any of `outputs` (empty: none leaked)."""
    texts = [o.decode(errors="replace") if isinstance(o, bytes) else o for o in outputs]
    return [part for part in secret.parts if any(part in text for text in texts)]


def anthropic_key(rng: random.Random | None = None) -> str:
    """A fresh `sk-ant-api03-…` key for integration tests (random, never a real one)."""
    rng = rng or random.Random()  # not a credential: a value to look for
    return "sk-ant-api03-Q7" + "".join(rng.choice(B64URL) for _ in range(86)) + "AA"
