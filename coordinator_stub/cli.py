"""`aitbc-coordinator serve | migrate`: run the HTTP API, or bring its database up to date.

Exit codes: 0 ok; 1 `migrate --check` found the database not up to date; 3 the server failed to
start; 65 the database is one `migrate` refuses (written by a newer coordinator, or not a
coordinator database); 69 the database cannot be reached; 78 a bad setting, or (serve) a
database that needs `aitbc-coordinator migrate` — systemd's `RestartPreventExitStatus=78`
stops it retrying what only an operator can fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from coordinator_stub import __version__

if TYPE_CHECKING:
    from coordinator_stub.config import CoordinatorSettings

EX_NOT_CURRENT = 1
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_CONFIG = 78


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aitbc-coordinator", description="AITBC coordinator")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="listen address (COORDINATOR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (COORDINATOR_PORT, default 8000)")
    serve.add_argument("--database-url", help="SQLAlchemy URL (COORDINATOR_DATABASE_URL)")
    migrate = commands.add_parser(
        "migrate",
        help="upgrade the database schema to this release (or --check it)",
        description="Upgrade the database to the newest schema revision this coordinator "
        "knows (idempotent; a 0.1.0 database is adopted, then upgraded). Back the database up "
        "first: docs/operations.md says how.",
    )
    migrate.add_argument("--database-url", help="SQLAlchemy URL (COORDINATOR_DATABASE_URL)")
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 0 only when the database is up to date (1 otherwise)",
    )
    return parser


def _settings(**overrides: Any) -> CoordinatorSettings | None:
    from coordinator_stub.config import CoordinatorSettings, unknown_settings

    unknown = unknown_settings()
    if unknown:
        for name in unknown:
            sys.stderr.write(
                f"aitbc-coordinator: unknown setting {name} (see docs/configuration.md)\n"
            )
        return None

    try:
        return CoordinatorSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        # Name the setting and the rule, never the value: it may be a key or hold a password.
        for error in exc.errors(include_input=False, include_url=False):
            name = "COORDINATOR_" + "_".join(str(part) for part in error["loc"]).upper()
            sys.stderr.write(f"aitbc-coordinator: bad setting {name}: {error['msg']}\n")
        return None


class _CommandFailedError(Exception):
    """Leave the command with this exit code; its message was written already."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextmanager
def _database_step(command: str, where: str, *, refused_code: int) -> Iterator[None]:
    """Turn what a database step may meet into one line on stderr and an exit code: a schema
    this coordinator will not use (`refused_code`), or a database it cannot reach (69)."""
    from sqlalchemy.exc import OperationalError

    from coordinator_stub.db.migrate import SchemaVersionError

    try:
        yield
    except SchemaVersionError as exc:
        sys.stderr.write(f"{command}: database {where}: {exc}\n")
        raise _CommandFailedError(refused_code) from exc
    except OperationalError as exc:
        sys.stderr.write(f"{command}: cannot reach database {where}: {exc.orig}\n")
        raise _CommandFailedError(EX_UNAVAILABLE) from exc


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "migrate":
            return _migrate(args)
        return _serve(args)
    except _CommandFailedError as exc:
        return exc.code


def _migrate(args: argparse.Namespace) -> int:
    from coordinator_stub.db import migrate
    from coordinator_stub.db.engine import Database

    settings = _settings(database_url=args.database_url)
    if settings is None:
        return EX_CONFIG
    db = Database(settings.database_url)
    where = Database.redact(settings.database_url)
    try:
        with _database_step("aitbc-coordinator migrate", where, refused_code=EX_DATAERR):
            if args.check:
                state = migrate.schema_state(db)
                sys.stdout.write(f"database {where}: {state.describe()}\n")
                return 0 if state.up_to_date else EX_NOT_CURRENT
            before, after = migrate.upgrade(db)
    finally:
        db.dispose()
    if before.current == after.current:
        sys.stdout.write(f"database {where}: already at revision {after.current}: up to date\n")
    else:
        origin = before.current or ("empty" if before.empty else "release 0.1.0, unversioned")
        sys.stdout.write(f"database {where}: upgraded from {origin} to revision {after.current}\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from coordinator_stub.app import create_app
    from coordinator_stub.db.engine import Database
    from coordinator_stub.db.migrate import prepare_for_serve
    from coordinator_stub.routes.slow_clients import with_header_timeout

    settings = _settings(host=args.host, port=args.port, database_url=args.database_url)
    if settings is None:
        return EX_CONFIG
    where = Database.redact(settings.database_url)
    db = Database(settings.database_url)
    try:
        # Before the port opens: a refusal is a message and exit 78, not a traceback.
        with _database_step("aitbc-coordinator: not serving", where, refused_code=EX_CONFIG):
            prepare_for_serve(db)
    finally:
        db.dispose()
    sys.stderr.write(
        f"aitbc-coordinator {__version__} listening on http://{settings.host}:{settings.port}, "
        f"database {where}\n"
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
            http=with_header_timeout(settings.header_timeout_s),
            limit_concurrency=settings.max_connections,
        )
    )
    server.run()
    return 0 if server.started else 3  # 3: uvicorn's "startup failed"
