"""Opening the terminal: loading the MetaTrader5 module (or the Linux bridge) lazily, and
the credentials it logs in with — never kept, logged, or put in a message."""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class MT5Unavailable(ImportError):
    """The MetaTrader5 module (or the Linux bridge) is not installed here."""


class TerminalStartError(RuntimeError):
    """The terminal could not be opened or refused the login."""


def load_mt5_module(
    kind: Literal["native", "bridge"] = "native", host: str = "localhost", port: int = 18812
) -> Any:
    """The MetaTrader5 module on Windows, or the `mt5linux` bridge to a terminal under Wine."""
    if kind == "native":
        try:
            return importlib.import_module("MetaTrader5")
        except ImportError as missing:
            raise MT5Unavailable(
                "the MetaTrader5 package is not installed: pip install -e '.[mt5]' "
                "(the extra 'mt5'; Windows only — on Linux use kind='bridge')"
            ) from missing
    if kind == "bridge":
        try:
            bridge = importlib.import_module("mt5linux")
        except (ImportError, SyntaxError) as missing:  # mt5linux 1.1.1 needs Python >= 3.12
            raise MT5Unavailable(
                "the Linux bridge needs mt5linux (pip install mt5linux, Python >= 3.12) and "
                "its server running under Wine beside a Windows Python with MetaTrader5"
            ) from missing
        return bridge.MetaTrader5(host=host, port=port)
    raise ValueError(f"kind must be 'native' or 'bridge', not {kind!r}")


class MT5Credentials(BaseModel):
    """Whom the terminal logs in as. Never logged, never in a message; not in the repr but
    for the masked password, and not echoed by a validation error."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    login: Annotated[int, Field(gt=0, repr=False)]
    password: SecretStr
    server: Annotated[str, Field(min_length=1, repr=False)]
    path: str | None = None  # terminal64.exe, when it is not the terminal found by default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MT5Credentials:
        """From MT5_LOGIN, MT5_PASSWORD, MT5_SERVER and, optionally, MT5_PATH."""
        env = os.environ if environ is None else environ
        missing = [
            name for name in ("MT5_LOGIN", "MT5_PASSWORD", "MT5_SERVER") if not env.get(name)
        ]
        if missing:
            raise ValueError(f"MT5 credentials need the environment variables {', '.join(missing)}")
        return cls(
            login=env["MT5_LOGIN"],
            password=env["MT5_PASSWORD"],
            server=env["MT5_SERVER"],
            path=env.get("MT5_PATH") or None,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> MT5Credentials:
        """From a TOML file with the keys login, password, server and, optionally, path."""
        with Path(path).open("rb") as file:
            return cls.model_validate(tomllib.load(file))
