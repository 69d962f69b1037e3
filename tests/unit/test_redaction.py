"""Values that look like credentials are masked (DESIGN §12): one case per pattern, the
ordinary text that must stay as it is, and generated secrets hidden in generated text."""

from __future__ import annotations

import base64
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.redaction import (
    REDACTED,
    holds_masks,
    redact_text,
    redact_value,
    secret_key,
    unfinished_at,
)
from tests.support.secrets import SECRETS, Secret, hidden, leaked

ANT = "sk-ant-api03-" + "Zx9_-a" * 15 + "AA"
AWS_ID, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq83kdXh2\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"key {ANT} ok", "key sk-ant-api03-*** ok"),
        ("OPENAI_KEY: sk-proj-Ab1_cD2-" + "x" * 30, "OPENAI_KEY: sk-proj-***"),
        ("sk-" + "aB3" * 16, "sk-***"),
        (f"{AWS_ID} {AWS_SECRET}", "AKIA*** ***"),
        (f"id={AWS_ID}", "id=AKIA***"),
        ("ASIAY34FZKBOKMUTVV7A", "ASIA***"),
        (f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key = ***"),
        (f'{{"SecretAccessKey": "{AWS_SECRET}"}}', '{"SecretAccessKey": "***"}'),
        ("token ghp_" + "a1B2c3" * 6, "token ghp_***"),
        ("github_pat_11ABCDEFG0_" + "abcdef12" * 8, "github_pat_***"),
        ("xoxb-1234567890-abcdefghijklmnop", "xoxb-***"),
        ("xapp-1-A0123456789-abcdef", "xapp-***"),
        ("Authorization: Bearer abc", "Authorization: Bearer ***"),
        ('"authorization": "Basic dXNlcjpwYXNz"', '"authorization": "Basic ***"'),
        ("curl -H 'Authorization: token 123'", "curl -H 'Authorization: token ***'"),
        ("got Bearer 0123456789abcdef back", "got Bearer *** back"),
        ("postgresql://bob:hunter2@db:5432/x", "postgresql://bob:***@db:5432/x"),
        ("redis://:pw@cache", "redis://:***@cache"),
        (
            f"before\n{PEM}\nafter",
            "before\n-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----\nafter",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz\nAAAA",
            "-----BEGIN OPENSSH PRIVATE KEY-----***",
        ),  # cut short: masked to the end of its base64
        (f"jwt {JWT}.", "jwt eyJ***."),
        (
            "DB_PASSWORD=hunter2 GITHUB_TOKEN=abc PASSWORD=x",
            "DB_PASSWORD=*** GITHUB_TOKEN=*** PASSWORD=***",
        ),
    ],
)
def test_each_kind_of_secret_is_masked_keeping_what_says_which(text: str, masked: str) -> None:
    assert redact_text(text) == masked
    assert redact_text(masked) == masked  # masking again changes nothing
    assert holds_masks(masked)


@pytest.mark.parametrize(
    "text",
    [
        "job-0123456789abcdef",  # our ids (before 2026-12-06)
        "job-019af4e2c1d03f9a8b7c6d5e",  # our ids: ms + 48 random bits
        "3f786850e387550fdab836ed7e6dc881de23001b",  # a commit id (40 hex: the AWS length)
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256
        "123e4567-e89b-12d3-a456-426614174000",  # a UUID
        "SGVsbG8gd29ybGQgaG93IGFyZSB5b3U/",  # base64 of ordinary words
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # 40 base64 alone: cannot be told
        "pip install sk-learn-more-about-it-please",  # an sk- slug, no capitals or digits
        "the Bearer authentication scheme; a bearer token",
        "see http://host:8080/path?a=b@c and mail@example.com",
        "MAX_TOKENS=5 TOKENS_USED=9 LANG=C",
        "markdown ***bold*** and A=*** stay",
        "task-a1B2c3D4e5F6a1B2c3D4e5F6a1B2c3D4 desk-0123456789ABCDEFGHIJKLMNOP",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    ],
)
def test_ordinary_text_is_left_as_it_is(text: str) -> None:
    assert redact_text(text) is text
    assert not holds_masks(text)


def test_json_values_are_walked_and_secret_named_keys_masked() -> None:
    doc = {
        "status": 200,
        "body": {"access_token": "abc", "tokens": 5, "max_tokens": "x", "password": ""},
        "headers": [["Set-Cookie", "sid=1"], {"set-cookie": "sid=2", "X-Api-Key": "k"}],
        "note": f"use {ANT}",
    }
    assert redact_value(doc) == {
        "status": 200,
        "body": {"access_token": REDACTED, "tokens": 5, "max_tokens": "x", "password": ""},
        "headers": [["Set-Cookie", "sid=1"], {"set-cookie": REDACTED, "X-Api-Key": REDACTED}],
        "note": "use sk-ant-api03-***",
    }
    assert holds_masks(redact_value(doc)) and not holds_masks({"tokens": REDACTED})
    plain = {"id": "job-0123456789abcdef", "result": {"stdout": "ok\n", "exitCode": 0}}
    assert redact_value(plain) is plain  # nothing masked: nothing copied


@pytest.mark.parametrize(
    ("name", "secret"),
    [("password", True), ("accessToken", True), ("client_secret", True), ("X-Api-Key", True),
     ("tokens", False), ("max_tokens", False), ("key", False), ("secretName", False)],
)  # fmt: skip
def test_secret_named_keys(name: str, secret: bool) -> None:
    assert secret_key(name) is secret


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("whole line\n", ""),
        ("done\nthe key is sk-ant-ap", "key is sk-ant-ap"),
        ("Authorization: Bearer ", "Authorization: Bearer "),
        ("a\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"),
        (f"{PEM}\n", ""),
    ],
)
def test_the_end_live_output_holds_back(text: str, held: str) -> None:
    assert text[unfinished_at(text) :] == held


@settings(max_examples=300, deadline=None)
@given(hidden())
def test_a_generated_secret_hidden_in_text_never_survives(case: tuple[str, Secret]) -> None:
    text, secret = case
    masked = redact_text(text)
    assert leaked(secret, masked) == [], (secret.kind, masked)
    assert holds_masks(masked), (secret.kind, masked)
    assert redact_text(masked) == masked


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(string.ascii_lowercase, max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(string.ascii_lowercase, max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def json_with_secret(draw: st.DrawFn) -> tuple[object, Secret]:
    """A JSON value with a generated secret in one of its strings (a leaf or a new one)."""
    secret = draw(SECRETS)
    text, _ = draw(hidden(secret))
    value = draw(JSON)
    return _plant(value, text, draw(st.randoms())), secret


def _plant(value: object, text: str, rng: random.Random) -> object:
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        return {**value, key: _plant(value[key], text, rng)}
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        return [*value[:i], _plant(value[i], text, rng), *value[i + 1 :]]
    return [value, text] if rng.random() < 0.5 else {"field": text, "other": value}


@settings(max_examples=200, deadline=None)
@given(json_with_secret())
def test_a_generated_secret_anywhere_in_a_json_value_never_survives(
    case: tuple[object, Secret],
) -> None:
    value, secret = case
    masked = redact_value(value)
    assert leaked(secret, repr(masked)) == []
    assert holds_masks(masked)


ORDINARY = st.one_of(
    st.text(string.ascii_lowercase, min_size=1, max_size=10),  # words
    st.binary(min_size=4, max_size=32).map(bytes.hex),  # hex ids and hashes, any length
    st.uuids().map(str),
    st.binary(min_size=8, max_size=8).map(lambda b: f"job-{b.hex()}"),
    st.binary(min_size=3, max_size=48).map(lambda b: base64.b64encode(b).decode()),
    # (after "Bearer", any 12 characters are a token: that word is not among these)
    st.sampled_from(["token", "password", "secret", "https://example.com/a?b=c", "AKIA"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ORDINARY, max_size=20), st.sampled_from([" ", "\n", ", ", "/", "."]))
def test_words_ids_hashes_uuids_and_base64_stay_as_they_are(words: list[str], sep: str) -> None:
    text = sep.join(words)
    assert redact_text(text) == text
    assert not holds_masks(text)
