"""The marketplace console (docs/console.md): one page at `/`, its script and stylesheet under
`/console/`. Static files shipped in the package (coordinator_stub/console/), no CDN, no build
step; the page speaks the same JSON API and keys as every other client."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(str(resources.files("coordinator_stub") / "console"))
# The page always asks again (it is tiny); the assets revalidate by ETag, so a new release's
# script is picked up on the next load, never mixed with an old page.
NO_CACHE = {"Cache-Control": "no-cache"}


def install(app: FastAPI) -> None:
    """Serve the console at `/` and its assets at `/console/`."""

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(ASSETS / "index.html", media_type="text/html", headers=NO_CACHE)

    app.mount("/console", _Assets(directory=ASSETS), name="console")


class _Assets(StaticFiles):
    """StaticFiles that asks browsers to revalidate (ETag) rather than guess freshness."""

    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers.update(NO_CACHE)
        return response
