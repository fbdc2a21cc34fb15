"""A headless Chromium for the console tests: Debian's `chromium`, driven by Playwright.

Playwright's own browser downloads are never used (`playwright install` cannot run here):
`executable_path` points at the system's chromium, or at $AITBC_CHROMIUM.
scripts/setup-browser.sh installs it; without it the tests skip, except on CI, where a
missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, sync_playwright


def chromium_path() -> str | None:
    return os.environ.get("AITBC_CHROMIUM") or shutil.which("chromium")


@contextmanager
def launched() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        message = "no chromium: run scripts/setup-browser.sh (or set AITBC_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
