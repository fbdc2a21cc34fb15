"""The docs stand alone and follow the code: generated references in sync, every setting
described, every link pointing at a file (and heading) of this repository."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import REPO

DOCS = REPO / "docs"


def render_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_docs", REPO / "scripts/render_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["api.md", "configuration.md"])
def test_generated_reference_is_what_the_code_renders(name: str) -> None:
    rendered = {path.name: text for path, text in render_docs().rendered().items()}
    assert (DOCS / name).read_text() == rendered[name], (
        f"docs/{name} is stale: run `make docs` and commit the result"
    )


def test_api_reference_lists_every_operation_the_coordinator_serves() -> None:
    from coordinator_stub.app import create_app

    text = (DOCS / "api.md").read_text()
    paths = create_app().openapi()["paths"]
    for path, item in paths.items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text


def test_every_setting_has_a_description() -> None:
    from agent.config import AgentSettings
    from coordinator_stub.config import CoordinatorSettings

    iter_fields = render_docs().iter_settings_fields
    undocumented = [
        f"{model.__name__}: {key}"
        for model in (AgentSettings, CoordinatorSettings)
        for key, field in iter_fields(model)
        if not (field.description or "").strip()
    ]
    assert undocumented == [], "give these settings a Field(description=...)"


def test_every_setting_appears_in_the_configuration_reference() -> None:
    from agent.config import AgentSettings
    from coordinator_stub.config import CoordinatorSettings

    text = (DOCS / "configuration.md").read_text()
    # The text under each "### `[section]`" / "### `[[array.of.tables]]`" heading.
    blocks = dict(re.findall(r"^### `(\[[^`]+\])`\n(.*?)(?=^### |^## |\Z)", text, re.S | re.M))
    for key, _field in render_docs().iter_settings_fields(AgentSettings):
        *table, name = key.split(".")
        if not table:
            assert f"[{name}]" in blocks, f"no section [{name}]"
            continue
        path = ".".join(table).replace("[]", "")
        heading = f"[[{path}]]" if table[-1].endswith("[]") else f"[{path}]"
        assert f"| `{name.removesuffix('[]')}` |" in blocks.get(heading, ""), key
    for name in CoordinatorSettings.model_fields:
        assert f"| `COORDINATOR_{name.upper()}` |" in text


def test_render_docs_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    """`make docs`' --check mode, as a CI step would use it, says which file to re-render."""
    result = subprocess.run(
        [sys.executable, "scripts/render_docs.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


DOC_FILES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_point_at_files_and_headings_of_this_repository(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue  # the docs link nothing outside; none are expected, and none are checked
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        assert linked.exists(), f"{doc.name}: broken link {target}"
        assert REPO in linked.parents or linked == REPO, f"{doc.name}: {target} leaves the repo"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{doc.name}: no heading #{anchor} in {file_part}"


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    skip = {"tests/test_docs.py"}
    return [
        REPO / n
        for n in names
        if n not in skip
        and not n.startswith("tests/coordinator/db/release_0_1_0/")
        and Path(n).suffix in {".py", ".md", ".service", ".example", ".toml", ".sh", ""}
    ]


def test_nothing_cites_a_document_users_do_not_have() -> None:
    """Comments, units and docs cite docs/, never the development notes outside the repo."""
    offenders = []
    for path in _tracked_text_files():
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if re.search(r"\bSPEC\b|\.\./shared|shared/(SPEC|STYLE|research)", line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
