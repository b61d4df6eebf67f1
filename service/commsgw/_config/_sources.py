"""Where settings come from: flags, the environment handed in by the command line, defaults."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from commsgw._config._resolve import resolve
from commsgw._config._settings import GROUPS, SETTINGS, Settings
from commsgw._errors import ConfigError


def add_arguments(
    parser: argparse.ArgumentParser, *, defaults: Mapping[str, str] | None = None
) -> None:
    """One flag per setting, in an argument group per concern (`GROUPS`); each help line names
    the default (`defaults`: the command's own, as given to `from_sources`) and the variable.
    A flag left out is None: `from_sources` then takes the environment, then the default. A
    boolean setting is a pair of flags (`--reflection` / `--no-reflection`)."""
    groups = {name: parser.add_argument_group(f"settings: {name}") for name in GROUPS}
    for s in SETTINGS:
        default = (defaults or {}).get(s.attr, s.default)
        shown = f"default {default}" if default else "unset by default"
        help_text = f"{s.help} ({shown}; env {s.env})".replace("%", "%%")
        if s.is_bool:
            groups[s.group].add_argument(
                s.flag,
                dest=s.attr,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            groups[s.group].add_argument(
                s.flag, dest=s.attr, default=None, metavar=s.metavar, help=help_text
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
            flag = getattr(args, s.attr, None)
            raw = ("true" if flag else "false") if isinstance(flag, bool) else flag
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
