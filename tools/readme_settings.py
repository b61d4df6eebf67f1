"""Rewrite the settings table of docs/settings.md from commsgw._config.SETTINGS (`make docs`)."""

from __future__ import annotations

import pathlib

from commsgw._config import settings_table

SETTINGS_DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "settings.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def table() -> str:
    rows = ["| env var | flag | default | meaning |", "|---|---|---|---|"]
    for env, flag, default, help_text in settings_table():
        cell = f" `{default}` " if default else " "
        rows.append(f"| `{env}` | `{flag}` |{cell}| {help_text} |")
    return "\n".join(rows)


def main() -> None:
    text = SETTINGS_DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{SETTINGS_DOC} has no {START} ... {END} markers")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    SETTINGS_DOC.write_text(f"{head}{START}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    main()
