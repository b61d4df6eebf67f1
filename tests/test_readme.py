"""README stays true: its settings table is the one the code validates."""

from __future__ import annotations

import pathlib

from commsgw._config import settings_table

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    text = README.read_text()
    for env, flag, default, help_text in settings_table():
        cell = f" `{default}` " if default else " "
        row = f"| `{env}` | `{flag}` |{cell}| {help_text} |"
        assert row in text, f"README settings table is out of date for {env}"


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make run " in text and "make test " in text
