"""README and docs/ stay true: the settings table (docs/settings.md) is the one the code
validates, README starts with the two commands and links every docs/ page it relies on."""

from __future__ import annotations

import pathlib
import re

from commsgw._config import settings_table

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETTINGS_DOC = ROOT / "docs" / "settings.md"


def test_every_setting_is_in_the_settings_table() -> None:
    text = SETTINGS_DOC.read_text()
    table = text.split("<!-- settings:start -->", 1)[1].split("<!-- settings:end -->", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    expected = []
    for env, flag, default, help_text in settings_table():
        cell = f" `{default}` " if default else " "
        expected.append(f"| `{env}` | `{flag}` |{cell}| {help_text} |")
    assert rows == expected, "docs/settings.md's table is out of date: run `make docs`"


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    first = text.split("\n## ", 2)[1]
    assert first.startswith("The two commands\n"), "README's first section is the two commands"
    assert "make run " in first and "make test " in first


def test_readme_links_to_docs_that_exist() -> None:
    text = README.read_text()
    links = set(re.findall(r"\]\((docs/[^)#]+)", text))
    assert "docs/settings.md" in links
    for link in links:
        assert (ROOT / link).is_file(), f"README links to {link}, which is missing"


def test_links_within_readme_and_docs_resolve() -> None:
    """Every `[...](#anchor)` and `[...](file#anchor)` names a heading that exists (GitHub's
    anchors: lower case, punctuation dropped, spaces as dashes)."""

    def anchors(path: pathlib.Path) -> set[str]:
        out = set()
        for heading in re.findall(r"^#+ (.+)$", path.read_text(), re.M):
            slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
            out.add(slug)
        return out

    for path in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", path.read_text()):
            linked = (path.parent / target).resolve() if target else path
            assert linked.is_file(), f"{path.name}: link to missing {target}"
            assert anchor in anchors(linked), f"{path.name}: no heading #{anchor} in {linked.name}"
