"""Settings: environment variables ``INTENTD_*``, optionally a TOML file.

One immutable ``Settings`` object is built at start-up and handed to whatever
needs it; nothing reads the environment after that.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

DEFAULT_SECRET_KEY = "intentd-embedded-dev-secret-change-me"
DEFAULT_SERVICE_TOKEN = "intentd-embedded-dev-service-token"

Mode = Literal["embedded", "distributed"]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the variable."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path(".intentd")
    database_url: str | None = None  # None: SQLite files under data_dir
    redis_url: str | None = None  # None: in-process event bus
    runtime_url: str | None = None  # where `serve experience` finds the runtime plane
    secret_key: str = DEFAULT_SECRET_KEY
    service_token: str = DEFAULT_SERVICE_TOKEN
    cors_origins: tuple[str, ...] = ()
    allow_anonymous: bool = False
    open_registration: bool = False
    registration_tenant: str = "default"
    admin_email: str | None = None
    admin_password: str | None = None
    intent_modules: tuple[str, ...] = ()
    auto_migrate: bool = True
    # Connections per process: PostgreSQL's default of 100 must serve every
    # replica of both planes (each runtime also holds DBOS's own pool).
    db_pool_size: int = 8
    # DBOS's own default. Each execution takes two of its transactions, in
    # threads: with 8, 64 running executions queued for them (docs/performance.md).
    dbos_pool_size: int = 20
    # Embedded: both SQLite files. "normal" (WAL): a commit survives any crash
    # of the process; an OS crash or power loss can undo the last ones.
    # "full": an fsync per commit, durable through power loss too.
    sqlite_synchronous: Literal["normal", "full"] = "normal"

    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600
    session_ttl: int = 24 * 3600  # sliding: renewed on use
    event_retention: int = 7 * 24 * 3600

    runtime_concurrency: int = 64
    queue_poll_interval: float = 0.1
    executor_id: str | None = None
    application_version: str = "intentd-1"
    heartbeat_interval: float = 2.0
    dead_after: float = 6.0

    max_body_bytes: int = 1 << 20
    max_frame_bytes: int = 1 << 20
    max_json_depth: int = 32
    login_failures_per_account: int = 5
    login_failures_per_ip: int = 20
    socket_messages_per_second: int = 50
    sockets_per_session: int = 16
    sockets_per_process: int = 20000
    intents_per_minute: int = 120

    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 40.0  # 20 s ping + 40 s = a peer silent 60 s is dropped
    auth_timeout: float = 5.0
    log_level: str = "INFO"
    log_json: bool = True
    agent: str = "default"
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str = "gpt-4o-mini"

    @field_validator("cors_origins", "intent_modules", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def mode(self) -> Mode:
        return "distributed" if self.is_postgres else "embedded"

    @property
    def is_postgres(self) -> bool:
        return bool(self.database_url) and self.database_url.startswith("postgres")

    @property
    def app_database_url(self) -> str:
        """SQLAlchemy async URL of the application store."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'intentd.sqlite').resolve()}"
        if self.database_url.startswith("sqlite"):
            return self.database_url.replace("sqlite://", "sqlite+aiosqlite://", 1)
        return _with_driver(self.database_url, "postgresql+asyncpg")

    @property
    def system_database_url(self) -> str:
        """URL of DBOS's system database (DBOS picks its own driver)."""
        if not self.database_url:
            return f"sqlite:///{(self.data_dir / 'dbos.sqlite').resolve()}"
        if self.database_url.startswith("sqlite"):
            return self.database_url.replace("intentd.sqlite", "dbos.sqlite")
        return _with_driver(self.database_url, "postgresql")

    def require_safe_secrets(self) -> None:
        """Refuse the embedded development secrets outside embedded mode."""
        if self.mode != "distributed":
            return
        for name, value, default in (
            ("INTENTD_SECRET_KEY", self.secret_key, DEFAULT_SECRET_KEY),
            ("INTENTD_SERVICE_TOKEN", self.service_token, DEFAULT_SERVICE_TOKEN),
        ):
            if not value or value == default:
                raise ConfigError(f"{name} must be set to a secret value in distributed mode")
            if len(value) < 16:
                raise ConfigError(f"{name} is too short: use at least 16 characters")


def _with_driver(url: str, driver: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{driver}{sep}{rest}" if sep else url


_ENV_PREFIX = "INTENTD_"


def load_settings(
    env: dict[str, str] | None = None, *, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Settings from (lowest first) defaults, a TOML file, ``INTENTD_*`` variables, overrides.

    The TOML file is ``config_file`` or ``INTENTD_CONFIG``; keys are the field
    names (``data_dir = "/var/lib/intentd"``).
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    path = config_file or (Path(env["INTENTD_CONFIG"]) if env.get("INTENTD_CONFIG") else None)
    if path is not None:
        try:
            values.update(tomllib.loads(path.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"INTENTD_CONFIG: cannot read {path}: {exc}") from exc
    fields = Settings.model_fields
    for key, raw in env.items():
        if not key.startswith(_ENV_PREFIX) or key == "INTENTD_CONFIG":
            continue
        name = key[len(_ENV_PREFIX) :].lower()
        if name in fields:
            values[name] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except Exception as exc:  # pydantic's message names the field
        raise ConfigError(str(exc)) from exc


def generate_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)

