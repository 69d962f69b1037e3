"""Settings from the environment: the task runner's user, the model prices file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.pricing import DEFAULT_TABLE
from services.bootstrap.runtime import topology
from services.bootstrap.settings import brain_settings, worker_settings
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


# ---------- BAKER_MODEL_PRICES ----------


def prices_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "prices.json"
    path.write_text(text)
    return str(path)


def test_model_prices_override_and_add_models_for_the_brain_and_the_workers(
    tmp_path: Path,
) -> None:
    doc = {"claude-sonnet-4-5": {"input": 1, "output": 2}, "my-model": {"input": 10, "output": 20,
           "cacheRead": 0.5, "cacheWrite": 12}}  # fmt: skip
    settings = Settings.from_env({"BAKER_MODEL_PRICES": prices_file(tmp_path, json.dumps(doc))})
    usage = {"inputTokens": 1_000_000, "outputTokens": 1_000_000, "cacheReadTokens": 1_000_000}
    assert settings.model_prices.cost("my-model", usage) == 30.5
    assert settings.model_prices.cost("claude-sonnet-4-5-20250929", usage) == 3.1  # 1 + 2 + 0.1
    assert settings.model_prices.cost("claude-haiku-4-5", usage) == 6.1  # shipped: 1 + 5 + 0.1
    # The composition root hands the same table to the Brain's ingest and to every worker.
    assert brain_settings(settings).prices is settings.model_prices
    assert worker_settings(settings).executors.prices is settings.model_prices
    assert Settings.from_env({}).model_prices is DEFAULT_TABLE


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, r"BAKER_MODEL_PRICES: cannot read .*missing\.json: No such file"),
        ("{not json", r"BAKER_MODEL_PRICES: .*prices\.json is not JSON"),
        ("[1, 2]", r"BAKER_MODEL_PRICES: must be a JSON object of models \(in .*prices\.json\)"),
        ('{"m": 3}', r"BAKER_MODEL_PRICES\.m: must be an object of prices"),
        ('{"m": {"input": 1}}', r"BAKER_MODEL_PRICES\.m\.output: must be a number >= 0"),
        ('{"m": {"input": -1, "output": 1}}', r"BAKER_MODEL_PRICES\.m\.input: must be a number"),
        ('{"m": {"input": 1, "output": "2"}}', r"BAKER_MODEL_PRICES\.m\.output: must be a number"),
    ],
)
def test_a_bad_prices_file_is_a_config_error_naming_the_problem(
    tmp_path: Path, text: str | None, reason: str
) -> None:
    path = str(tmp_path / "missing.json") if text is None else prices_file(tmp_path, text)
    with pytest.raises(ConfigError, match=reason):
        Settings.from_env({"BAKER_MODEL_PRICES": path})


def test_baker_db_names_a_sqlite_file_or_a_postgresql_url() -> None:
    sqlite = Settings.from_env({"BAKER_DB": "/srv/rm.db", "BAKER_DATA_DIR": "/d"})
    assert sqlite.db_path == Path("/srv/rm.db") and sqlite.db_url is None
    url = "postgresql://baker@127.0.0.1:5432/baker"
    pg = Settings.from_env({"BAKER_DB": url, "BAKER_DATA_DIR": "/d"})
    assert pg.db_url == url and pg.db_path == Path("/d/readmodel.db")
    assert "baker@" not in repr(pg)  # a URL may hold a password
    with pytest.raises(ConfigError, match=r"BAKER_DB: mysql:// is not a read model we keep"):
        Settings.from_env({"BAKER_DB": "mysql://x/y"})


def test_baker_replicas_sets_every_stream_and_bucket_and_is_bounded() -> None:
    assert topology(Settings.from_env({})).replicas == 1
    assert topology(Settings.from_env({"BAKER_REPLICAS": "3"})).replicas == 3
    with pytest.raises(ConfigError, match=r"BAKER_REPLICAS: 7 is outside 1\.\.5"):
        Settings.from_env({"BAKER_REPLICAS": "7"})
