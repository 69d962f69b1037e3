"""`--help` works for every `baker` command and names each of its options; ids and numbers
that cannot be right are refused with exit 2 before anything is contacted."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from services.cli.app import build_parser, main


def commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command with its parser, nested ones (`dispatch command`) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from commands(sub, (*prefix, name))


ALL = sorted(commands(build_parser()), key=lambda item: item[0])
# Options the brief of each command promises, whatever else it has.
PROMISED = {
    ("dispatch", "command"): {"--wait", "--json", "--timeout"},
    ("dispatch", "http"): {"--method", "--header", "--data", "--wait", "--json"},
    ("dispatch", "agent"): {"--model", "--max-tokens", "--system", "--wait"},
    ("history",): {"--json", "--jsonl"},
    ("tail",): {"--aggregate", "--type", "--id", "--from", "--json"},
    ("events",): {"--job", "--type", "--worker", "--since", "--until", "--limit", "--json"},
    ("health",): {"--json"},
    ("extensions",): {"--json"},
    ("handoff",): {"--json"},
    ("up",): {"--nats-port", "--workers"},
    ("cluster", "up"): {"--nodes", "--data-dir"},
    ("audit", "export"): {"--all"},
    ("audit", "verify"): {"--live", "--json"},
}


def test_the_commands_of_the_design_are_all_there() -> None:
    names = {path[0] for path, _ in ALL}
    assert names >= {
        "up", "brain", "worker", "projector", "monitor", "dispatch", "jobs", "job", "history",
        "tail", "rebuild", "verify", "extensions", "health", "handoff", "cancel", "events",
    }  # fmt: skip


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_help_exits_0_and_names_every_option(
    path: tuple[str, ...], parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: baker {' '.join(path)}")
    options = {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
    assert PROMISED.get(path, set()) <= options
    for option in options:
        assert option in out, option


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["history", "a.b"], "id: 'a.b' is not a valid id"),
        (["cancel", "a b"], "id: 'a b' is not a valid id"),
        (["tail", "--id", "x.>"], "--id: 'x.>' is not a valid id"),
        (["tail", "--type", "JobExploded"], "'JobExploded' is not an event type"),
        (["events", "--job", "a.*"], "--job: 'a.*' is not a valid id"),
        (["events", "--limit", "0"], "--limit must be 1..500"),
        (["up", "--nats-port", "70000"], "--nats-port must be a port"),
        (["cluster", "up", "--nodes", "6"], "--nodes must be 1 to 5"),
    ],
)
def test_bad_ids_and_numbers_exit_2_naming_them(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    assert says in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("start", ["0", "-3", "²", "x"])
def test_tail_from_must_be_a_sequence(start: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["tail", "--from", start])
    assert done.value.code == 2
    assert "is not a stream sequence" in capsys.readouterr().err
