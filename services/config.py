"""Settings from the environment (DESIGN §7); a bad value names its variable."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson

from adapters.nats.connector import Options
from domain.command_sandbox import CommandLimits
from domain.errors import FieldError
from domain.pricing import DEFAULT_TABLE, PriceTable, price_table
from services import embedded

DEFAULT_ALLOWED_COMMANDS = (
    "kubectl,curl,ls,df,uptime,date,whoami,cat,echo,grep,ps,dig,nslookup,ping,traceroute,helm"
)


class ConfigError(ValueError):
    """An environment variable with a value we cannot use."""


@dataclass(frozen=True)
class Settings:
    nats_url: str | None  # None: `baker up` embeds a server; other commands use the default
    nats_creds: str | None
    data_dir: Path
    db_path: Path
    api_port: int
    api_token: str | None
    allowed_commands: tuple[str, ...]
    worker_concurrency: int
    ack_wait: float
    default_model: str | None
    log_format: Literal["text", "json"]
    log_level: str
    nats_connect_within: float = 15.0
    worker_grace: float = 30.0
    heartbeat_every: float = 30.0
    stuck_after: float = 120.0
    http_allowed_hosts: tuple[str, ...] | None = None
    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    api_host: str = "127.0.0.1"
    api_url_override: str | None = None
    brain_url: str | None = None  # where `baker api` sends writers (BAKER_BRAIN_URL)
    sse_keepalive: float = 15.0
    brain_role: Literal["active", "pending"] = "active"
    brain_version: str = "0.1.0"
    handoff_pending_timeout: float = 120.0
    handoff_drain_cap: float = 60.0
    handoff_ack_timeout: float = 30.0
    missed_heartbeats: int = 3
    monitor_sweep: float = 5.0
    mcp_retries: int = 3
    mcp_retry_delay: float = 3.0
    task_launcher: Literal["local", "kubernetes", "off"] = "local"
    task_grace: float = 2.0
    task_runner_nats_url: str | None = None
    task_run_as: int | None = None  # uid for local task runners; None: nobody when root
    task_image: str = "baker-street/task-runner:latest"
    k8s_api: str | None = None
    k8s_token: str | None = field(default=None, repr=False)
    k8s_namespace: str = "baker-street-tasks"
    model_prices: PriceTable = DEFAULT_TABLE  # the shipped table with BAKER_MODEL_PRICES on top
    idempotency_ttl: int = 86_400  # seconds an idempotency key holds (BAKER_IDEMPOTENCY_TTL)
    # (uid, gid) a root worker's command children run as; None: `nobody`, looked up by the
    # worker (BAKER_COMMAND_RUN_AS)
    command_run_as: tuple[int, int] | None = None
    command_limits: CommandLimits = field(default_factory=CommandLimits)
    replicas: int = 1  # of every stream and KV bucket (BAKER_REPLICAS; 3 on a cluster)
    # BAKER_DB as a `postgresql://` URL: the read model lives in PostgreSQL (DESIGN §13);
    # None: the SQLite file `db_path`
    db_url: str | None = field(default=None, repr=False)

    def nats(self, url: str, name: str) -> Options:
        """Connection settings for `url` with this configuration's creds and timeout."""
        return Options(
            url=url, creds=self.nats_creds, name=name, first_connect_within=self.nats_connect_within
        )

    @property
    def api_url(self) -> str:
        """Where the CLI finds the Brain API (`BAKER_API_URL`, else this machine's port)."""
        return self.api_url_override or f"http://127.0.0.1:{self.api_port}"

    @property
    def nats_url_or_default(self) -> str:
        """`BAKER_NATS_URL`, else the server of a `baker up` running on this data dir (as a
        `reader`), else the local default."""
        return self.nats_url_for("reader")

    def nats_url_for(self, role: str) -> str:
        """`BAKER_NATS_URL` as it is (an external server: its credentials are the
        operator's), else the server of a `baker up` running on this data dir with the
        credentials of `role` (DESIGN §12), else the local default."""
        return self.nats_url or embedded.role_url(self.data_dir, role) or "nats://127.0.0.1:4222"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("BAKER_DATA_DIR", "./.baker"))
        log_format = env.get("BAKER_LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise ConfigError(f"BAKER_LOG_FORMAT: {log_format!r} is not 'text' or 'json'")
        commands = tuple(
            c.strip()
            for c in env.get("BAKER_ALLOWED_COMMANDS", DEFAULT_ALLOWED_COMMANDS).split(",")
            if c.strip()
        )
        return cls(
            nats_url=env.get("BAKER_NATS_URL") or None,
            nats_creds=env.get("BAKER_NATS_CREDS") or None,
            data_dir=data_dir,
            db_path=_db_path(env, data_dir),
            db_url=_db_url(env),
            replicas=_int(env, "BAKER_REPLICAS", 1, 1, 5),
            api_port=_int(env, "BAKER_API_PORT", 3000, 0, 65535),
            api_token=env.get("BAKER_API_TOKEN") or None,
            allowed_commands=commands,
            worker_concurrency=_int(env, "BAKER_WORKER_CONCURRENCY", 4, 1, 1024),
            ack_wait=float(_int(env, "BAKER_ACK_WAIT_SECONDS", 60, 1, 86_400)),
            default_model=env.get("BAKER_DEFAULT_MODEL") or None,
            log_format=log_format,  # type: ignore[arg-type]
            log_level=env.get("BAKER_LOG_LEVEL", "INFO").upper(),
            nats_connect_within=float(_int(env, "BAKER_NATS_CONNECT_TIMEOUT", 15, 1, 3600)),
            worker_grace=_float(env, "BAKER_WORKER_GRACE_SECONDS", 30.0),
            heartbeat_every=_float(env, "BAKER_HEARTBEAT_SECONDS", 30.0),
            stuck_after=_float(env, "BAKER_STUCK_TIMEOUT_SECONDS", 120.0),
            http_allowed_hosts=_list(env, "BAKER_HTTP_ALLOWED_HOSTS"),
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
            cors_origins=_list(env, "BAKER_CORS_ORIGINS") or (),
            api_host=env.get("BAKER_API_HOST") or "127.0.0.1",
            api_url_override=env.get("BAKER_API_URL") or None,
            brain_url=env.get("BAKER_BRAIN_URL") or None,
            sse_keepalive=_float(env, "BAKER_SSE_KEEPALIVE_SECONDS", 15.0),
            brain_role=_role(env),
            brain_version=env.get("BAKER_BRAIN_VERSION") or "0.1.0",
            handoff_pending_timeout=_float(env, "BAKER_HANDOFF_PENDING_TIMEOUT", 120.0),
            handoff_drain_cap=_float(env, "BAKER_HANDOFF_DRAIN_CAP", 60.0),
            handoff_ack_timeout=_float(env, "BAKER_HANDOFF_ACK_TIMEOUT", 30.0),
            missed_heartbeats=_int(env, "BAKER_MISSED_HEARTBEATS", 3, 1, 100),
            monitor_sweep=_float(env, "BAKER_MONITOR_SWEEP_SECONDS", 5.0),
            mcp_retries=_int(env, "BAKER_MCP_DISCOVERY_RETRIES", 3, 0, 20),
            mcp_retry_delay=_float(env, "BAKER_MCP_DISCOVERY_DELAY_SECONDS", 3.0),
            task_launcher=_launcher(env),
            task_grace=_float(env, "BAKER_TASK_GRACE_SECONDS", 2.0),
            task_runner_nats_url=env.get("BAKER_TASK_RUNNER_NATS_URL") or None,
            task_run_as=_user(env, "BAKER_TASK_RUN_AS"),
            task_image=env.get("BAKER_TASK_IMAGE") or "baker-street/task-runner:latest",
            k8s_api=env.get("BAKER_K8S_API") or None,
            k8s_token=env.get("BAKER_K8S_TOKEN") or None,
            k8s_namespace=env.get("BAKER_K8S_NAMESPACE") or "baker-street-tasks",
            model_prices=_prices(env),
            idempotency_ttl=_int(env, "BAKER_IDEMPOTENCY_TTL", 86_400, 1, 30 * 86_400),
            command_run_as=run_as_user(env, "BAKER_COMMAND_RUN_AS"),
            command_limits=CommandLimits(
                address_space=_int(env, "BAKER_COMMAND_ADDRESS_SPACE_MB", 4096, 16, 2**40) << 20,
                file_size=_int(env, "BAKER_COMMAND_FILE_SIZE_MB", 64, 1, 2**40) << 20,
                open_files=_int(env, "BAKER_COMMAND_OPEN_FILES", 256, 16, 2**20),
            ),
        )


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _db_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("BAKER_DB") or ""
    return raw if raw.startswith(POSTGRES_SCHEMES) else None


def _db_path(env: Mapping[str, str], data_dir: Path) -> Path:
    """The SQLite read model's file: BAKER_DB unless that names PostgreSQL."""
    raw = env.get("BAKER_DB") or ""
    if raw and "://" in raw and not raw.startswith(POSTGRES_SCHEMES):
        raise ConfigError(f"BAKER_DB: {raw.split('://')[0]}:// is not a read model we keep "
                          "(a file path, or a postgresql:// URL)")  # fmt: skip
    return Path(raw) if raw and not _db_url(env) else data_dir / "readmodel.db"


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    if not 0 < value <= 86_400:
        raise ConfigError(f"{name}: {value} is outside (0, 86400]")
    return value


def _prices(env: Mapping[str, str]) -> PriceTable:
    """`BAKER_MODEL_PRICES`: the path of a JSON file `{model: {input, output, cacheWrite?,
    cacheRead?}}` in US$ per million tokens. Read at start-up, so that a bad file stops the
    process saying what is wrong, instead of costing every call at the wrong price."""
    path = env.get("BAKER_MODEL_PRICES")
    if not path:
        return DEFAULT_TABLE
    try:
        document = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"BAKER_MODEL_PRICES: cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"BAKER_MODEL_PRICES: {path} is not JSON ({exc})") from None
    try:
        return price_table(document)
    except FieldError as exc:  # names the entry, e.g. BAKER_MODEL_PRICES.my-model.output
        raise ConfigError(f"{exc} (in {path})") from None


def _role(env: Mapping[str, str]) -> Literal["active", "pending"]:
    role = env.get("BAKER_BRAIN_ROLE") or "active"
    if role not in ("active", "pending"):
        raise ConfigError(f"BAKER_BRAIN_ROLE: {role!r} is not 'active' or 'pending'")
    return role  # type: ignore[return-value]


def _launcher(env: Mapping[str, str]) -> Literal["local", "kubernetes", "off"]:
    kind = env.get("BAKER_TASK_LAUNCHER") or "local"
    if kind not in ("local", "kubernetes", "off"):
        raise ConfigError(f"BAKER_TASK_LAUNCHER: {kind!r} is not local, kubernetes or off")
    return kind  # type: ignore[return-value]


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if not raw:
        return None
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _user(env: Mapping[str, str], name: str) -> int | None:
    """A uid given as a number or a user name."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit():
        return _int(env, name, 0, 0, 2**31 - 1)
    try:
        return pwd.getpwnam(raw).pw_uid
    except KeyError:
        raise ConfigError(f"{name}: no user named {raw!r}") from None


def run_as_user(env: Mapping[str, str], name: str) -> tuple[int, int] | None:
    """An unprivileged user given as a name or a uid, as (uid, gid); None when unset. A uid
    without an entry in the user database keeps its own number as its gid."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        entry = pwd.getpwuid(int(raw)) if raw.isascii() and raw.isdigit() else pwd.getpwnam(raw)
    except KeyError:
        if not (raw.isascii() and raw.isdigit()):
            raise ConfigError(f"{name}: no user named {raw!r} on this machine") from None
        uid = _int(env, name, 0, 0, 2**31 - 2)
        user = (uid, uid)
    else:
        user = (entry.pw_uid, entry.pw_gid)
    if user[0] == 0:
        raise ConfigError(f"{name}: {raw!r} is root; name an unprivileged user")
    return user


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: {value} is outside {low}..{high}")
    return value
