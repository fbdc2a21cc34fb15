"""`aitbc-coordinator serve [--host --port --database-url]`."""

from __future__ import annotations

import argparse
import sys
from types import FrameType

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aitbc-coordinator", description="AITBC coordinator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="listen address (COORDINATOR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (COORDINATOR_PORT, default 8000)")
    serve.add_argument("--database-url", help="SQLAlchemy URL (COORDINATOR_DATABASE_URL)")
    args = parser.parse_args(argv)

    import uvicorn

    from coordinator_stub.app import create_app
    from coordinator_stub.config import CoordinatorSettings

    overrides = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("database_url", args.database_url),
        )
        if value is not None
    }
    try:
        settings = CoordinatorSettings(**overrides)
    except ValidationError as exc:
        # Name the setting and the rule, never the value: it may be a key or hold a password.
        for error in exc.errors(include_input=False, include_url=False):
            name = "COORDINATOR_" + "_".join(str(part) for part in error["loc"]).upper()
            sys.stderr.write(f"aitbc-coordinator: bad setting {name}: {error['msg']}\n")
        return 78  # EX_CONFIG: systemd's RestartPreventExitStatus=78 stops retrying
    from coordinator_stub.db import Database

    sys.stderr.write(
        f"aitbc-coordinator listening on http://{settings.host}:{settings.port}, "
        f"database {Database.redact(settings.database_url)}\n"
    )
    sys.stderr.flush()
    app = create_app(settings)

    class Server(uvicorn.Server):
        """On SIGTERM/SIGINT, open lease long polls answer at once instead of being waited out."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            hub = getattr(app.state, "lease_hub", None)
            if hub is not None:
                hub.close()

    server = Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
        )
    )
    server.run()
    return 0 if server.started else 3  # 3: uvicorn's "startup failed"
