"""Process settings: one typed, frozen object, loaded once.

Precedence: command-line flags > environment (``EVENTYARD_<NAME>``) > config file (TOML or
YAML, from ``--config`` or ``EVENTYARD_CONFIG``) > defaults. Unknown keys are errors, in the
file and in the environment alike; the admin token never appears in a repr or a log line.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import yaml

from eventyard.errors import ConfigError

ENV_PREFIX = "EVENTYARD_"
ALL_ROLES = ("collect", "unify", "route", "control")
#: The password in ``scheme://user:password@host`` (redacted in reprs).
_PASSWORD = re.compile(r"://([^:/@]+):[^@/]+@")
#: Environment variables that are not settings themselves.
_ENV_NOT_SETTINGS = frozenset({"EVENTYARD_CONFIG"})


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: Where the embedded log, state store and warehouse live.
    data_dir: str = "eventyard-data"
    host: str = "127.0.0.1"
    port: int = 8080
    #: Log backend URL; empty means SQLite in the data directory (``sqlite:///path`` also works);
    #: ``nats://host:4222[,nats://...][?prefix=eventyard&replicas=3]`` is NATS JetStream (scale-out).
    log: str = ""
    #: State store URL; empty means SQLite in the data directory;
    #: ``postgresql://user@host:5432/db[?schema=eventyard]`` is PostgreSQL (scale-out).
    state: str = ""
    #: Preset admin token (otherwise one is generated on first start).
    admin_token: str | None = None
    #: Public base URL (``https://collect.example.com``) given to browser SDKs; by default
    #: the Host header of the request is used.
    public_url: str | None = None
    #: Unprocessed ingest records above which the API answers 429 with Retry-After.
    backlog_limit: int = 10_000_000
    #: SQLite ``synchronous`` of the log: FULL (fsync every commit) or NORMAL.
    log_synchronous: str = "FULL"
    #: How long processed events stay readable in the log (tail, replay, deletion).
    log_retention_hours: float = 168.0
    #: Take the client address from X-Forwarded-For (only behind a trusted proxy).
    trust_forwarded_for: bool = False
    log_level: str = "info"
    #: messageId deduplication window per source.
    dedupe_window_hours: float = 24.0
    #: What this process runs: any of collect, unify, route, control (``all``: every role).
    #: In the environment and config file also a comma list (``collect,route``).
    roles: tuple[str, ...] = ALL_ROLES
    #: Processes serving HTTP on the one port (a ``collect``-only process only; see
    #: ``runtime/workers.py``): each parses requests and appends to the log on its own CPU.
    workers: int = 1
    #: Identity graph and profiles: empty = inside the state store's SQLite file;
    #: ``postgresql://user@host/db?schema=name`` = PostgreSQL (schema ``eventyard_identity`` by default).
    identity_store: str = ""
    #: How long each profile's event history is kept (0 = keep none).
    profile_events_retention_days: float = 30.0
    #: Profile API requests per second per access token (bursts of twice that); 0 = no limit.
    profile_api_rate_limit_per_second: float = 100.0
    #: Control API requests per second per token (bursts of twice that); 0 = no limit.
    admin_rate_limit_per_second: float = 50.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"`port` must be between 1 and 65535, got {self.port}")
        if self.backlog_limit <= 0:
            raise ValueError("`backlog_limit` must be positive")
        if self.log_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("`log_synchronous` must be FULL, NORMAL or EXTRA")
        unknown = set(self.roles) - set(ALL_ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; use collect, unify, route, control or all")
        if not self.roles:
            raise ValueError("`roles` is empty; name at least one of collect, unify, route, control or all")
        if self.workers < 1:
            raise ValueError("`workers` must be at least 1")
        if self.workers > 1 and self.roles != ("collect",):
            raise ValueError(
                "`workers` above 1 needs `roles` = collect: the other roles keep per-process state "
                "(delivery workers, rate limits, metrics); run them in a process of their own "
                "(eventyard serve --role unify,route,control --port ...)"
            )
        if self.dedupe_window_hours <= 0:
            raise ValueError("`dedupe_window_hours` must be positive")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise ValueError("`log_level` must be one of critical, error, warning, info, debug")
        if self.admin_rate_limit_per_second < 0:
            raise ValueError("`admin_rate_limit_per_second` cannot be negative")
        if self.profile_events_retention_days < 0:
            raise ValueError("`profile_events_retention_days` cannot be negative")
        if self.profile_api_rate_limit_per_second < 0:
            raise ValueError("`profile_api_rate_limit_per_second` cannot be negative")
        if self.identity_store and not self.identity_store.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise ValueError("`identity_store` must be empty, sqlite:///path or postgresql://...")

    def __repr__(self) -> str:
        fields = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name == "admin_token" and value is not None:
                value = "***"
            elif name in ("log", "state", "identity_store") and value:
                value = _PASSWORD.sub(r"://\1:***@", value)
            fields.append(f"{name}={value!r}")
        return f"Settings({', '.join(fields)})"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    def log_path(self) -> Path:
        return _sqlite_path(self.log, self.data_path / "log.sqlite3", "log")

    def state_path(self) -> Path:
        return _sqlite_path(self.state, self.data_path / "state.sqlite3", "state")


def _sqlite_path(url: str, default: Path, what: str) -> Path:
    if not url:
        return default
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).expanduser().resolve()
    raise ConfigError(f"`{what}` = {url!r} is not supported by this build; use an empty value or sqlite:///path")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return data


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    known = set(Settings.__struct_fields__)
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in known:
            raise ConfigError(
                f"unknown setting {name}; known: " + ", ".join(ENV_PREFIX + k.upper() for k in sorted(known))
            )
        out[key] = value
    return out


def load_settings(
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build the settings from defaults, file, environment and explicit overrides."""
    env = dict(os.environ if environ is None else environ)
    merged: dict[str, Any] = {}
    file = config_file or env.get("EVENTYARD_CONFIG")
    if file:
        merged.update(_read_file(Path(file)))
    merged.update(_from_env(env))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if "roles" in merged:
        merged["roles"] = parse_roles(merged["roles"])
    try:
        return msgspec.convert(merged, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None


def parse_roles(value: object) -> tuple[str, ...]:
    """``"collect,unify"``, ``["collect", "route"]`` or ``"all"`` -> the roles, in a fixed order."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"`roles` must be a list or a comma-separated string, got {value!r}")
    names = {str(item).strip().lower() for item in items if str(item).strip()}
    if "all" in names:
        names = (names - {"all"}) | set(ALL_ROLES)
    unknown = names - set(ALL_ROLES)
    if unknown:
        raise ConfigError(f"unknown role(s) {sorted(unknown)}; use collect, unify, route, control or all")
    if not names:
        raise ConfigError("`roles` is empty; name at least one of collect, unify, route, control or all")
    return tuple(r for r in ALL_ROLES if r in names)
