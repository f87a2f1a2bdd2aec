"""A fitted market as a scenario's `[market]` section, in a TOML file of its own.

`arbitrex calibrate` writes one; a scenario uses it by copying its `[market]` table (and the
tables under it) in. The file is checked before it is written: read back, validated as a
scenario's market, and turned into a market again, it must give the very market that was
fitted, so nothing the fit found is lost to a field the scenario format cannot hold.

Python's standard library reads TOML but does not write it; the subset a market needs —
tables, arrays of tables, strings, numbers, booleans and arrays of them — is written here.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from scenarios.spec import MarketSection, Scenario
from sim.market import MarketConfig

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class MarketFileError(ValueError):
    """A fitted market that a scenario file cannot declare, said in one line."""


def market_section(config: MarketConfig) -> dict[str, object]:
    """The scenario `[market]` table declaring `config`. The market's week is not declared:
    a scenario's week is the standard FX week with its holidays, which the check below
    holds the fitted market to."""
    dumped = config.model_dump(mode="json", exclude_defaults=False)
    fields = MarketSection.model_fields
    section: dict[str, object] = {"kind": "synthetic"}
    for name, value in dumped.items():
        if name == "week":
            holidays = value.get("holidays", [])
            if holidays:
                section["holidays"] = [f"{day}T00:00:00Z" for day in holidays]
        elif name in fields:
            # A model switched off is None, which TOML cannot say; the section reads false so.
            section[name] = False if value is None else value
    return section


def market_toml(config: MarketConfig, comments: Sequence[str] = ()) -> str:
    """The text of a market file: `comments` first (where the numbers come from), then the
    `[market]` table. Raises MarketFileError if the text would not give `config` back."""
    lines = [f"# {line}".rstrip() for text in comments for line in text.splitlines()]
    if lines:
        lines.append("")
    lines.extend(_table(("market",), market_section(config)))
    text = "\n".join(lines).rstrip("\n") + "\n"
    back = read_market(text, "the written market")
    if back != config:
        differ = sorted(
            name
            for name in MarketConfig.model_fields
            if getattr(back, name) != getattr(config, name)
        )
        raise MarketFileError(
            f"a scenario's [market] cannot declare the fitted market: {', '.join(differ)}"
            " would differ"
        )
    return text


def read_market(text: str, source: str) -> MarketConfig:
    """The market a market file declares, as a scenario would build it."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MarketFileError(f"{source}: not valid TOML: {error}") from error
    if set(raw) != {"market"}:
        raise MarketFileError(f"{source}: a market file holds one [market] table only")
    try:
        scenario = Scenario.model_validate({"name": "market file", "market": raw["market"]})
    except ValidationError as error:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise MarketFileError(f"{source}: {where}") from error
    return scenario.market_config()


def write_market_file(path: Path, config: MarketConfig, comments: Sequence[str] = ()) -> None:
    """Check, then write: a market that cannot be declared leaves no file behind."""
    text = market_toml(config, comments)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _table(path: tuple[str, ...], table: Mapping[str, object]) -> list[str]:
    """A table's own values first, then its sub-tables and arrays of tables, as TOML needs."""
    header = ".".join(_key(part) for part in path)
    lines = [f"[{header}]"]
    nested: list[str] = []
    for key, value in table.items():
        if value is None:
            # TOML has no null: the key is left out, which reads back as the field's default;
            # the check in `market_toml` refuses the market where that default is not None.
            continue
        if isinstance(value, Mapping):
            nested.append("")
            nested.extend(_table((*path, key), value))
        elif _is_table_array(value):
            for item in value:  # type: ignore[attr-defined]
                nested.append("")
                nested.extend(
                    f"[{line}]" if i == 0 else line
                    for i, line in enumerate(_table((*path, key), item))
                )
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    return lines + nested


def _is_table_array(value: object) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)
    )


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MarketFileError(f"a market holds finite numbers only, not {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        if any(isinstance(item, Mapping) for item in value):
            raise MarketFileError("an array mixing tables and values cannot be written")
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise MarketFileError(f"cannot write {type(value).__name__} {value!r} as TOML")
