"""The sandbox's settings: BAKER_COMMAND_RUN_AS and the limits, and what a worker makes of
them as root or not."""

from __future__ import annotations

import pwd

import pytest

from adapters.executors import sandbox
from domain.command_sandbox import CommandLimits
from services.bootstrap.settings import command_sandbox
from services.config import ConfigError, Settings

NOBODY = pwd.getpwnam("nobody")


def test_the_cpu_limit_follows_the_job_timeout() -> None:
    limits = dict(CommandLimits().rlimits(5.0))
    assert limits["cpu"] == 6
    assert dict(CommandLimits().rlimits(None))["cpu"] == 31  # the 30 s default, plus one
    assert limits == {"cpu": 6, "as": 4 << 30, "fsize": 64 << 20, "nofile": 256, "core": 0}


def test_the_limits_come_from_the_environment() -> None:
    settings = Settings.from_env({
        "BAKER_COMMAND_ADDRESS_SPACE_MB": "1024", "BAKER_COMMAND_FILE_SIZE_MB": "8",
        "BAKER_COMMAND_OPEN_FILES": "64",
    })  # fmt: skip
    assert settings.command_limits == CommandLimits(1 << 30, 8 << 20, 64)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no-such-user-here", "BAKER_COMMAND_RUN_AS: no user named 'no-such-user-here'"),
        ("root", "BAKER_COMMAND_RUN_AS: 'root' is root; name an unprivileged user"),
        ("0", "BAKER_COMMAND_RUN_AS: '0' is root"),
        ("BAKER_COMMAND_OPEN_FILES", None),
    ],
)
def test_a_run_as_user_that_cannot_be_used_is_refused_naming_the_variable(
    value: str, message: str | None
) -> None:
    if message is None:  # and a bad limit names its own variable
        with pytest.raises(ConfigError, match="BAKER_COMMAND_OPEN_FILES: 'many'"):
            Settings.from_env({"BAKER_COMMAND_OPEN_FILES": "many"})
        return
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"BAKER_COMMAND_RUN_AS": value})
    assert str(caught.value).startswith(message)


def test_a_user_is_named_or_numbered() -> None:
    by_name = Settings.from_env({"BAKER_COMMAND_RUN_AS": "nobody"}).command_run_as
    by_uid = Settings.from_env({"BAKER_COMMAND_RUN_AS": str(NOBODY.pw_uid)}).command_run_as
    unknown = Settings.from_env({"BAKER_COMMAND_RUN_AS": "54321"}).command_run_as
    assert by_name == by_uid == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert unknown == (54321, 54321)


def test_a_root_worker_runs_commands_as_nobody_by_default_and_others_as_themselves() -> None:
    settings = Settings.from_env({})
    assert command_sandbox(settings, euid=0).user == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert command_sandbox(settings, euid=1000).user is None
    chosen = Settings.from_env({"BAKER_COMMAND_RUN_AS": "54321"})
    assert command_sandbox(chosen, euid=0).user == (54321, 54321)
    assert command_sandbox(chosen, euid=1000).user is None  # no privilege to drop


def test_a_root_worker_that_cannot_confine_its_commands_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sandbox, "native", lambda: None)  # not built
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)  # and no util-linux
    with pytest.raises(ConfigError) as caught:
        command_sandbox(Settings.from_env({}), euid=0)
    assert str(caught.value) == (
        f"BAKER_COMMAND_RUN_AS: running commands as uid {NOBODY.pw_uid} needs "
        "_sandbox_spawn.so (`make sandbox`, a C compiler) or prlimit and setpriv (util-linux)"
    )


def test_a_root_worker_with_no_nobody_user_asks_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr(pwd, "getpwnam", no_user)
    with pytest.raises(ConfigError, match=r"^BAKER_COMMAND_RUN_AS: unset, and there is no user"):
        command_sandbox(Settings.from_env({}), euid=0)
