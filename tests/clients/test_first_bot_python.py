"""The Python first bot's own test (clients/python/examples/first-bot/test_bot.py) in `make test`:
the example's test function, loaded from its file and run here unchanged, with the
commsgw_client.testing fixtures (one `commsgw dev` for the session, reset before each test)."""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "clients/python/examples/first-bot/test_bot.py"

pytestmark = pytest.mark.e2e


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("first_bot_python_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_caller_presses_1_during_the_menu_and_leaves_a_message = (
    _load().test_caller_presses_1_during_the_menu_and_leaves_a_message
)
