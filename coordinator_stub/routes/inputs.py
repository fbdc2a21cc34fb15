"""Input types shared by the marketplace routes: their limits, checked before the database.

PostgreSQL refuses text with NUL characters (a driver error, i.e. a 500), so every free-text
input goes through `Text`, which turns one into a 422. Ids in paths are checked by `is_id_shaped`:
anything that cannot be one of our ids is simply not found (404), without asking the database.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, Field

from coordinator_stub.errors import NotFoundError

_ID_SHAPE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Name = Annotated[Text, Field(min_length=1, max_length=128)]
Region = Annotated[Text, Field(max_length=64)]
LongText = Annotated[Text, Field(max_length=2000)]
Capability = Annotated[Text, Field(max_length=64)]

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000

# Paging query parameters; each endpoint gives its own default (`limit: Limit = 100`).
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


def is_id_shaped(value: str) -> bool:
    return _ID_SHAPE.fullmatch(value) is not None


def check_gpu_id(gpu_id: str) -> None:
    """A GPU id in a path that cannot be one of ours is not found (404)."""
    if not is_id_shaped(gpu_id):
        raise NotFoundError(f"GPU {gpu_id} not found")
