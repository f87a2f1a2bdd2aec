"""`arbitrex serve`'s configuration: flags, then `ARBITREX_*` environment variables, then a
TOML file (`--config` or `ARBITREX_CONFIG`), then the defaults — the first that gives a value
wins. A deployment (ops/compose.yaml) configures the server by its environment alone.

The file holds the same names as the flags, with underscores, in a `[serve]` table, and
may hold an `[mt5]` table: how the live broker's orders look and how its terminal is read
(`brokers.mt5.MT5Config`: magic number, the broker's symbol names, the server's clock ...),
for `serve --broker mt5` and `audit fetch-tape`:

    [serve]
    db = "postgresql://arbitrex@db/arbitrex"
    port = 8080

    [mt5]
    magic = 20261201
    symbols = { EURUSD = "EURUSD.m" }
    server_time_zone = "America/New_York"
    server_time_offset_seconds = 25200
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

if TYPE_CHECKING:
    from brokers.mt5.config import MT5Config

CONFIG_ENV = "ARBITREX_CONFIG"
FILE_TABLES = ("serve", "mt5")


class BrokerKind(StrEnum):
    SIM = "sim"
    MT5 = "mt5"


class ConfigError(ValueError):
    """A configuration the server cannot start with: named in one line, exit 2."""


class ServeSettings(BaseSettings):
    """Everything `arbitrex serve` can be told; each field is a flag (`--rate-limit`), an
    environment variable (`ARBITREX_RATE_LIMIT`) and a key of the file (`rate_limit`)."""

    model_config = SettingsConfigDict(
        env_prefix="ARBITREX_", extra="forbid", frozen=True, validate_default=True
    )

    # No default: where the audit trail goes is never guessed.
    db: str = Field(min_length=1)
    broker: BrokerKind = BrokerKind.SIM
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8000, ge=1, le=65535)
    seed: int = Field(7, ge=0)
    keys: Path = Path("arbitrex-keys.db")
    rate_limit: float = Field(50.0, ge=0.001)
    burst: int = Field(100, ge=1)
    max_concurrent: int = Field(64, ge=1)
    latency_ms: float | None = Field(None, ge=0.001)
    mt5_credentials: Path | None = None
    mt5_bridge: str | None = None
    access_log: bool = True
    # Seconds between samples of the quote tape (markouts of live trades); 0: no tape.
    quote_tape_seconds: float = Field(1.0, ge=0.0)
    # A fitted cost model (`arbitrex model fit`): the engine records its slippage estimate
    # for each order at validation, as evidence only. A model file is code: only your own.
    cost_model: Path | None = None
    # sim: the paper venue's address (a Unix socket path, or HOST:PORT on loopback).
    paper_venue: str | None = Field(None, min_length=1)
    # sim: the instant the paper clock reads when the server (or its venue) starts; default
    # now. A pinned instant meets the same simulated market whatever the day (tests, demos).
    paper_start: AwareDatetime | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags arrive as init arguments; the file comes in through `load` (see there). No
        # .env and no secrets directory: only what the operator set, where they can see it.
        return init_settings, env_settings


def read_config_file(path: Path, table: str) -> dict[str, Any]:
    """One table of a TOML config file (empty when it has none), or ConfigError naming what
    is wrong with the file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path}: not UTF-8 text") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}: not TOML: {error}") from error
    unknown = sorted(set(document) - set(FILE_TABLES))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown table or key {unknown[0]!r}; use [serve] and [mt5]"
        )
    found = document.get(table, {})
    if not isinstance(found, dict):
        raise ConfigError(f"config file {path}: {table!r} must be a table ([{table}])")
    return found


def config_path(config: Path | None) -> Path | None:
    """The config file given, else the one $ARBITREX_CONFIG names, if any."""
    if config is None and os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return config


def load_mt5_config(config: Path | None) -> MT5Config:
    """The `[mt5]` table of the config file (`config`, or $ARBITREX_CONFIG's) as an
    MT5Config, its defaults where the file says nothing; ConfigError naming the first key
    that does not hold."""
    # Imported on use: a command's help must not load the broker.
    from brokers.mt5.config import MT5Config

    path = config_path(config)
    table = read_config_file(path, "mt5") if path is not None else {}
    try:
        return MT5Config.model_validate(table)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        problem = "unknown setting" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"mt5.{key} in {path}: {problem}") from error


def load(flags: dict[str, Any], config: Path | None = None) -> ServeSettings:
    """The settings from `flags` (only those given on the command line), the environment
    and the file `config` or `$ARBITREX_CONFIG` names; ConfigError if they do not hold."""
    config = config_path(config)
    from_file = read_config_file(config, "serve") if config is not None else {}
    # The file ranks under the environment: a field the environment sets is dropped from it,
    # and what is left rides with the flags (which, being given, never overlap it there).
    # pydantic-settings matches variable names whatever their case; so does this.
    environ = {name.upper() for name in os.environ}
    from_env = {
        name for name in ServeSettings.model_fields if f"ARBITREX_{name.upper()}" in environ
    }
    merged = {k: v for k, v in from_file.items() if k not in from_env} | flags
    try:
        return ServeSettings(**merged)
    except ValidationError as error:
        raise ConfigError(_one_line(error, from_file, flags, config)) from error


def _one_line(
    error: ValidationError, from_file: dict[str, Any], flags: dict[str, Any], config: Path | None
) -> str:
    """The first problem, named where the operator set it: --flag, ARBITREX_NAME or the file."""
    # A misspelt key explains a missing one: name what was written wrong first.
    errors = sorted(error.errors(), key=lambda e: e["type"] == "missing")
    first = errors[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    if name in flags:
        where = f"--{name.replace('_', '-')}"
    elif name in from_file:
        where = f"{name} in {config}"
    else:
        where = f"ARBITREX_{name.upper()}"
    if first["type"] == "missing":
        return f"no {name} given: set --{name}, ARBITREX_{name.upper()} or {name} in a config file"
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    return f"{where}: {first['msg']}"
