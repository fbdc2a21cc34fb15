"""Input types shared by the routes: their limits, checked before the database.

NUL characters and lone surrogates never get this far: `routes.guard` refuses them for every
body and query string (`Text` still refuses a NUL, for values that arrive some other way).
Free-form JSON objects (a miner's `capabilities`, a heartbeat's `metadata`) are bounded in size,
depth and items by `bounded_json`. Ids in paths are checked by `is_id_shaped`: anything that
cannot be one of our ids is simply not found (404), without asking the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any

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


def bounded_json(
    *, max_bytes: int, max_depth: int, max_items: int
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A validator for a free-form JSON object: at most `max_bytes` once serialized, nesting
    at most `max_depth` deep, and no object or array with more than `max_items` entries."""

    def check(value: dict[str, Any]) -> dict[str, Any]:
        def walk(node: Any, depth: int) -> None:
            if isinstance(node, dict | list):
                if depth > max_depth:
                    raise ValueError(f"nested deeper than {max_depth} levels")
                if len(node) > max_items:
                    raise ValueError(f"an object or array has more than {max_items} entries")
                for child in node.values() if isinstance(node, dict) else node:
                    walk(child, depth + 1)

        walk(value, 1)
        size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
        if size > max_bytes:
            raise ValueError(f"{size} bytes once serialized; at most {max_bytes}")
        return value

    return check


# A host's description of itself (`POST /v1/miners/register`): room for 64 MIG units with all
# their facts, not for a database row of megabytes.
Capabilities = Annotated[
    dict[str, Any], AfterValidator(bounded_json(max_bytes=64 * 1024, max_depth=6, max_items=512))
]
# Free-form heartbeat extras: read by nobody, so kept small.
Metadata = Annotated[
    dict[str, Any], AfterValidator(bounded_json(max_bytes=8 * 1024, max_depth=4, max_items=128))
]

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
