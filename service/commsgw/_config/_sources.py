"""Where settings come from: flags, the environment handed in by the command line, defaults."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from commsgw._config._resolve import resolve
from commsgw._config._settings import SETTINGS, Settings
from commsgw._errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults come from the environment in `from_sources`."""
    for s in SETTINGS:
        parser.add_argument(
            s.flag, dest=s.attr, default=None, metavar=s.env, help=f"{s.help} [{s.env}]"
        )


def from_sources(
    environ: Mapping[str, str],
    args: argparse.Namespace | None = None,
    *,
    defaults: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Build and validate Settings: `overrides`, else the flag, else the environment variable,
    else `defaults` (a command's own defaults, by attribute name), else the table's default."""
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw: str | None = None
        source = s.env
        if overrides is not None and s.attr in overrides:
            raw = overrides[s.attr]
        if raw is None and args is not None:
            raw = getattr(args, s.attr, None)
            source = s.flag
        if raw is None:
            raw = environ.get(s.env)
            source = s.env
        if raw is None:
            if defaults is not None and s.attr in defaults:
                raw = defaults[s.attr]
            else:
                continue  # the field's default: the table's, parsed once
        try:
            values[s.attr] = s.parse(raw)
        except ValueError as exc:
            shown = "***" if "SECRET" in s.env or "PASSWORD" in s.env else repr(raw)
            raise ConfigError(f"{source}={shown}: {exc}") from None
    return resolve(Settings(**values))


def settings_table() -> Sequence[tuple[str, str, str, str]]:
    """(env, flag, default, help) for the README."""
    return [(s.env, s.flag, s.default, s.help) for s in SETTINGS]
