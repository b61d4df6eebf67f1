"""Ids for test data."""

from __future__ import annotations

import uuid


def new_guid() -> str:
    return str(uuid.uuid4())
