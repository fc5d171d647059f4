"""Parsing user text into run options: hidden sizes and TOML files, with one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from cortex_fa.errors import ConfigError

# More hidden columns than this is a typo, not a study.
MAX_COLUMNS = 10_000


def parse_sizes(value, name: str = "hidden") -> tuple[int, ...]:
    """Parse ``500``, ``"240,240"``, ``[240, 240]`` or ``"240x3"`` into a tuple of ints."""
    if isinstance(value, str):
        text = value.strip()
        if "x" in text and "," not in text:
            width, _, count = text.partition("x")
            n = _as_int(count, name)
            if not 1 <= n <= MAX_COLUMNS:  # checked before the list is built
                raise ConfigError(f"{name} {text!r} asks for {n} columns; use 1 to {MAX_COLUMNS}")
            items = [width] * n
        else:
            items = [t for t in text.split(",")] if text else []
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"{name} must be a list of positive integers such as 240,240, got {value!r}")
    if len(items) > MAX_COLUMNS:
        raise ConfigError(f"{name} lists {len(items)} columns; use 1 to {MAX_COLUMNS}")
    sizes = tuple(_as_int(v, name) for v in items)
    if any(s <= 0 for s in sizes):
        raise ConfigError(f"{name} sizes must be positive integers, got {list(sizes)}")
    return sizes


def _as_int(v, name):
    if isinstance(v, bool):
        raise ConfigError(f"{name} must be an integer, got {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    try:
        return int(str(v).strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {v!r}") from None


def load_toml(path) -> dict[str, Any]:
    """Read a TOML file, turning I/O and syntax problems into one-line errors."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, expected a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
