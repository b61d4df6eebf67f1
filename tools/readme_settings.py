"""Rewrite README.md's settings table from commsgw._config.SETTINGS (`make docs`)."""

from __future__ import annotations

import pathlib

from commsgw._config import settings_table

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def table() -> str:
    rows = ["| env var | flag | default | meaning |", "|---|---|---|---|"]
    for env, flag, default, help_text in settings_table():
        cell = f" `{default}` " if default else " "
        rows.append(f"| `{env}` | `{flag}` |{cell}| {help_text} |")
    return "\n".join(rows)


def main() -> None:
    text = README.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    main()
