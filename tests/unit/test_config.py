"""Settings from the environment: the task runner's user."""

from __future__ import annotations

import pytest

from services.config import ConfigError, Settings


def test_the_task_runner_user_is_a_uid_or_a_name() -> None:
    assert Settings.from_env({}).task_run_as is None
    assert Settings.from_env({"BAKER_TASK_RUN_AS": "1234"}).task_run_as == 1234
    assert Settings.from_env({"BAKER_TASK_RUN_AS": "nobody"}).task_run_as == 65534


@pytest.mark.parametrize(
    ("value", "reason"),
    [("no-such-user-here", "no user named"), ("-5", "no user named"), ("99999999999", "outside")],
)
def test_a_bad_task_runner_user_names_the_variable(value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"BAKER_TASK_RUN_AS: .*{reason}"):
        Settings.from_env({"BAKER_TASK_RUN_AS": value})
