"""The command policy (digest §3.3): parsing, allowlist, env rules, limits, output shaping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.command_policy import (
    BLOCKED_ENV_KEYS,
    DEFAULT_ALLOWED_COMMANDS,
    DEFAULT_COMMAND_TIMEOUT,
    MAX_COMMAND_LENGTH,
    CommandRejected,
    basename,
    cap_output,
    child_env,
    effective_timeout,
    parse_allowed_commands,
    parse_command,
    strip_ansi,
)

ALLOWED = DEFAULT_ALLOWED_COMMANDS


def rejection(command: str, allowed: tuple[str, ...] = ALLOWED) -> str:
    with pytest.raises(CommandRejected) as caught:
        parse_command(command, allowed)
    return str(caught.value)


def test_the_default_allowlist_and_blocked_keys_are_the_digests() -> None:
    assert ALLOWED == (
        "kubectl", "curl", "ls", "df", "uptime", "date", "whoami", "cat", "echo", "grep", "ps",
        "dig", "nslookup", "ping", "traceroute", "helm",
    )  # fmt: skip
    assert {"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "NODE_OPTIONS", "ANTHROPIC_API_KEY"} | {
        "AUTH_TOKEN", "VOYAGE_API_KEY", "HOME", "USER",
    } == BLOCKED_ENV_KEYS  # fmt: skip
    assert MAX_COMMAND_LENGTH == 1024


def test_a_simple_command_splits_into_argv() -> None:
    parsed = parse_command("df -h /", ALLOWED)
    assert parsed.argv == ("df", "-h", "/")
    assert parsed.env == {}
    assert parsed.binary == "df"


def test_quotes_group_words_and_are_removed() -> None:
    parsed = parse_command("""grep -e "two words" 'single quoted' plain\\ space""", ALLOWED)
    assert parsed.argv == ("grep", "-e", "two words", "single quoted", "plain space")


def test_the_binary_is_matched_on_its_basename_and_kept_as_given() -> None:
    parsed = parse_command("/usr/bin/df -h", ALLOWED)
    assert parsed.argv == ("/usr/bin/df", "-h")
    assert parsed.binary == "df"
    assert basename("/a/b/c") == "c"


def test_a_binary_outside_the_list_is_rejected_with_the_digest_message() -> None:
    assert rejection("rm -rf /") == "command rejected: 'rm' is not in the allowed commands list"
    assert rejection("/bin/rm x") == "command rejected: 'rm' is not in the allowed commands list"
    assert rejection("echo hi", allowed=("ls",)) == (
        "command rejected: 'echo' is not in the allowed commands list"
    )


def test_a_custom_allowlist_is_honoured() -> None:
    assert parse_command("sleep 1", ("sleep", " env ")).argv == ("sleep", "1")
    assert parse_command("env", ("sleep", " env ")).argv == ("env",)


def test_shell_syntax_is_plain_arguments() -> None:
    parsed = parse_command("echo '$(whoami)' ; rm -rf / && cat /etc/passwd | grep x `id`", ALLOWED)
    assert parsed.argv == (
        "echo", "$(whoami)", ";", "rm", "-rf", "/", "&&", "cat", "/etc/passwd", "|", "grep", "x",
        "`id`",
    )  # fmt: skip
    assert parse_command("echo #not-a-comment", ALLOWED).argv == ("echo", "#not-a-comment")


def test_leading_assignments_become_env() -> None:
    parsed = parse_command("LANG=C TZ='Europe/London' date +%Z", ALLOWED)
    assert parsed.env == {"LANG": "C", "TZ": "Europe/London"}
    assert parsed.argv == ("date", "+%Z")


def test_only_leading_assignments_are_env() -> None:
    parsed = parse_command("echo A=1 B=2", ALLOWED)
    assert parsed.env == {}
    assert parsed.argv == ("echo", "A=1", "B=2")


def test_a_word_that_is_not_an_env_name_starts_argv() -> None:
    assert rejection("1A=x echo") == "command rejected: '1A=x' is not in the allowed commands list"
    assert rejection("--opt=x echo") == (
        "command rejected: '--opt=x' is not in the allowed commands list"
    )


@pytest.mark.parametrize("key", sorted(BLOCKED_ENV_KEYS))
def test_blocked_env_keys_are_rejected(key: str) -> None:
    assert rejection(f"{key}=/tmp/x ls") == f"command rejected: cannot override env var '{key}'"


def test_blocked_keys_are_rejected_after_allowed_ones_too() -> None:
    assert rejection("A=1 LD_PRELOAD=/x.so ls") == (
        "command rejected: cannot override env var 'LD_PRELOAD'"
    )


@pytest.mark.parametrize("command", ["", "   ", "\t\n", "A=1", "A=1 B=2", "''"])
def test_nothing_to_run_is_an_empty_command(command: str) -> None:
    assert rejection(command) == "command rejected: empty command"


def test_the_length_limit_is_checked_first() -> None:
    longest = "echo " + "x" * (MAX_COMMAND_LENGTH - 5)
    assert parse_command(longest, ALLOWED).argv[0] == "echo"
    message = "command rejected: exceeds max length of 1024 characters"
    assert rejection(longest + "x") == message
    assert rejection("rm " + "x" * MAX_COMMAND_LENGTH) == message
    assert rejection("'" * (MAX_COMMAND_LENGTH + 1)) == message


@pytest.mark.parametrize("command", ["echo 'open", 'echo "open', "echo trailing\\"])
def test_bad_quoting_is_rejected_clearly(command: str) -> None:
    assert rejection(command) == "command rejected: unbalanced quotes"


def test_the_allowlist_env_variable_is_a_comma_list() -> None:
    assert parse_allowed_commands("ls, df ,,echo") == ("ls", "df", "echo")
    assert parse_allowed_commands(None) == DEFAULT_ALLOWED_COMMANDS
    assert parse_allowed_commands(" , ") == DEFAULT_ALLOWED_COMMANDS


def test_the_timeout_is_thirty_seconds_or_the_shorter_job_timeout() -> None:
    assert effective_timeout(None) == DEFAULT_COMMAND_TIMEOUT == 30.0
    assert effective_timeout(300) == 30.0
    assert effective_timeout(2.5) == 2.5
    assert effective_timeout(0) == 30.0


def test_child_env_layers_overrides_on_the_base_but_never_blocked_keys() -> None:
    env = child_env({"PATH": "/bin", "LANG": "C.UTF-8"}, {"LANG": "C", "FOO": "1", "PATH": "/x"})
    assert env == {"PATH": "/bin", "LANG": "C", "FOO": "1"}


def test_ansi_sequences_are_stripped() -> None:
    coloured = "\x1b[1;31mred\x1b[0m \x1b[2K\x1b[Gplain \x1b]0;title\x07done\x1b(B"
    assert strip_ansi(coloured) == "red plain done"
    assert strip_ansi("no escapes: [1;31m") == "no escapes: [1;31m"


def test_output_under_the_cap_is_decoded_whole() -> None:
    assert cap_output(b"hello\n", 10) == ("hello\n", False)
    assert cap_output(b"0123456789", 10) == ("0123456789", False)
    assert cap_output(b"bad \xff byte", 100) == ("bad \ufffd byte", False)


def test_output_over_the_cap_is_cut_and_marked() -> None:
    text, truncated = cap_output(b"x" * 30, 10)
    assert truncated
    assert text == "x" * 10 + "\n…[truncated: 20 bytes omitted]"


def test_output_cut_while_reading_reports_the_original_size() -> None:
    text, truncated = cap_output(b"x" * 10, 10, total=1_000)
    assert truncated
    assert text.endswith("[truncated: 990 bytes omitted]")


def test_a_cut_through_a_multibyte_character_drops_the_half() -> None:
    text, truncated = cap_output("ééé".encode(), 3)  # 6 bytes; byte 3 is half of the 2nd "é"
    assert truncated
    assert text == "é\n…[truncated: 3 bytes omitted]"


@given(st.text(max_size=300), st.lists(st.sampled_from(ALLOWED), max_size=5))
def test_parse_either_rejects_or_returns_an_allowed_binary(text: str, allowed: list[str]) -> None:
    try:
        parsed = parse_command(text, allowed)
    except CommandRejected as exc:
        assert str(exc).startswith("command rejected: ")
        return
    assert basename(parsed.argv[0]) in allowed
    assert not set(parsed.env) & BLOCKED_ENV_KEYS


@given(
    st.lists(st.sampled_from(["echo", "ls", "A=1", "x;y", "$(id)", "|", "&&", "'q q'"]), max_size=8)
)
def test_assembled_lines_parse_or_reject(words: list[str]) -> None:
    line = " ".join(words)
    try:
        parsed = parse_command(line, ("echo", "ls"))
    except CommandRejected:
        return
    assert parsed.binary in ("echo", "ls")
    leading = next(i for i, word in enumerate(words) if word != "A=1")
    assert len(parsed.argv) == len(words) - leading  # every word after the binary is an argument
    assert parsed.env == ({"A": "1"} if leading else {})
