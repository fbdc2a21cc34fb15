"""How a bad agent configuration is described: which key, where it was set, a guess for a typo.

`agent.config` validates; this module turns pydantic's errors into the one-line messages an
operator reads (`unknown key 'gpu.bakend' at /etc/aitbc-agent/agent.toml:12 (did you mean
'backend'?)`). It imports nothing of the agent: the settings model comes in as a parameter.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


def _key_of(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else part
    return key


def _known_keys(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the table at `loc` may hold (the section's, or an array item's)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        args = typing.get_args(annotation)
        item = args[0] if typing.get_origin(annotation) is list and args else annotation
        if not (isinstance(item, type) and issubclass(item, BaseModel)):
            return []
        model = item
    return list(model.model_fields)


def _line_of(lines: list[str] | None, loc: tuple[int | str, ...]) -> int | None:
    """The line (1-based) that sets the key at `loc` in the file, when it can be found."""
    if not lines:
        return None
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return None
    key, sections = names[-1], names[:-1]
    header = re.compile(r"^\s*\[\[?\s*" + re.escape(".".join(sections)) + r"\s*\]\]?\s*(#.*)?$")
    assignment = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    in_section = not sections
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("["):
            in_section = bool(header.match(line))
        elif in_section and assignment.match(line):
            return number
    return None


def describe(
    exc: ValidationError,
    root: type[BaseModel],
    *,
    env_prefix: str,
    path: Path | None = None,
    lines: list[str] | None = None,
) -> str:
    """Every problem of `exc`, each naming its key, where it was set and a guess for a typo."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = _key_of(loc) or "(top level)"
        env_name = env_prefix + "__".join(str(part).upper() for part in loc)
        line = _line_of(lines, loc)
        if len(loc) == 2 and env_name in {name.upper() for name in os.environ}:
            where = f" (environment {env_name})"  # the environment wins over the file
        elif path is not None and line is not None:
            where = f" at {path}:{line}"
        else:
            where = ""
        if err["type"] == "extra_forbidden":
            last = str(loc[-1]) if loc else ""
            guess = difflib.get_close_matches(last, _known_keys(root, loc[:-1]), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            problems.append(f"unknown key {key!r}{where}{hint}")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"bad value for {key!r}{where}: {msg}")
    return "; ".join(dict.fromkeys(problems))


def unknown_env_keys(
    environ: Mapping[str, str], *, env_prefix: str, sections: Collection[str]
) -> list[str]:
    """`AITBC_AGENT_*` variables naming no section: pydantic-settings would skip them silently.

    A key inside a known section (`AITBC_AGENT_GPU__BAKEND`) is checked by the model itself.
    """
    problems = []
    for name in sorted(environ):
        if not name.upper().startswith(env_prefix):
            continue
        key = name[len(env_prefix) :].lower()
        section = key.split("__", 1)[0]
        if section not in sections:
            guess = difflib.get_close_matches(section, sorted(set(sections)), n=1)
            hint = f" (did you mean section {guess[0]!r}?)" if guess else ""
            problems.append(f"unknown key {key.replace('__', '.')!r} (environment {name}){hint}")
    return problems


def exposed_inline_key(path: Path | None, data: Mapping[str, Any]) -> str | None:
    """Why the config file at `path` (parsed: `data`) exposes its inline `api_key` (readable by
    group or others), or None when it does not. Never raises: it only warns."""
    if path is None:
        return None
    coordinator = data.get("coordinator")
    inline = coordinator.get("api_key") if isinstance(coordinator, Mapping) else None
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if not inline or not mode & 0o044:
        return None
    return (
        f"{path} holds the coordinator api_key inline and is readable by others (mode "
        f"{mode:o}): chmod 600 it, or move the key to api_key_file or the systemd credential"
    )
