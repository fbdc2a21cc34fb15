"""`aitbc-coordinator serve | migrate`: run the HTTP API, or bring its database up to date.

Exit codes: 0 ok; 1 `migrate --check` found the database not up to date; 3 the server failed to
start; 65 the database is one `migrate` refuses (written by a newer coordinator, or not a
coordinator database); 69 the database cannot be reached; 78 a bad setting, or (serve) a
database that needs `aitbc-coordinator migrate` — systemd's `RestartPreventExitStatus=78`
stops it retrying what only an operator can fix.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from aitbc_common.logs import configure_logging, get_logger
from coordinator_stub import __version__

if TYPE_CHECKING:
    from coordinator_stub.config import CoordinatorSettings

EX_NOT_CURRENT = 1
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_CONFIG = 78


EXIT_CODES = """exit codes:
  0   done (migrate --check: the database is up to date)
  1   migrate --check: the database is not up to date
  3   the server failed to start (the port is taken, ...)
  65  migrate refuses the database (written by a newer coordinator, or not a coordinator's);
      keys refuses (a subject of another role, an unknown key id)
  69  the database cannot be reached
  78  a bad or unknown COORDINATOR_* setting, or (serve) a database that needs migrate"""

SETTINGS = """settings: COORDINATOR_* environment variables, every one in docs/configuration.md
(an unknown one is refused). A first admin key outside systemd, either of:
  aitbc-coordinator keys create --role admin --subject ops
  export COORDINATOR_BOOTSTRAP_KEYS=admin:ops:$(openssl rand -hex 24)"""


def _command(
    commands: Any, name: str, help_: str, description: str, examples: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_,
        description=description,
        epilog=f"examples:\n{examples}\n\n{EXIT_CODES}\n\n{SETTINGS}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aitbc-coordinator",
        description="The AITBC coordinator: GPU marketplace, miner protocol, staking, ledger.",
        epilog=f"{EXIT_CODES}\n\n{SETTINGS}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    url_help = "SQLAlchemy URL (COORDINATOR_DATABASE_URL; default coordinator.db here)"
    serve = _command(
        commands,
        "serve",
        "run the HTTP API",
        "Serve the API (OpenAPI at /openapi.json, docs at /docs). An empty database gets the "
        "schema of this release; any other must be at its revision (see migrate).",
        "  aitbc-coordinator serve\n"
        "  COORDINATOR_DATABASE_URL=postgresql+psycopg://aitbc@db/aitbc aitbc-coordinator serve",
    )
    serve.add_argument("--host", help="listen address (COORDINATOR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (COORDINATOR_PORT, default 8000)")
    serve.add_argument("--database-url", help=url_help)
    migrate = _command(
        commands,
        "migrate",
        "upgrade the database schema to this release (or --check it)",
        "Upgrade the database to the newest schema revision this coordinator knows "
        "(idempotent; a 0.1.0 database is adopted, then upgraded). Back the database up "
        "first: docs/operations.md says how.",
        "  aitbc-coordinator migrate --check\n  aitbc-coordinator migrate",
    )
    migrate.add_argument("--database-url", help=url_help)
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 0 only when the database is up to date (1 otherwise)",
    )
    keys = _command(
        commands,
        "keys",
        "create, list or revoke API keys in the database",
        "Manage API keys directly in the database (the same as the admin API, without a key "
        "to call it with). A revocation reaches running coordinators within "
        "COORDINATOR_KEY_CACHE_TTL_S (2 s).",
        "  aitbc-coordinator keys create --role admin --subject ops\n"
        "  aitbc-coordinator keys list --subject host-01\n"
        "  aitbc-coordinator keys revoke key_0123456789abcdef",
    )
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--database-url", help=url_help)
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser(
        "create", help="issue a key; it is printed once, on stdout", parents=[database]
    )
    create.add_argument("--role", choices=("admin", "miner", "client"), required=True)
    create.add_argument("--subject", required=True, help="the miner id or client id it acts for")
    listing = actions.add_parser(
        "list", help="list key ids, roles, subjects and times", parents=[database]
    )
    listing.add_argument("--subject", help="only this subject's keys")
    revoke = actions.add_parser("revoke", help="revoke a key by its id", parents=[database])
    revoke.add_argument("key_id")
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
        if args.command == "keys":
            return _keys(args)
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


def _keys(args: argparse.Namespace) -> int:
    from coordinator_stub.auth import generate_key, list_keys, revoke_key, store_key
    from coordinator_stub.core.clock import rfc3339, utcnow
    from coordinator_stub.db.engine import Database
    from coordinator_stub.db.migrate import prepare_for_serve
    from coordinator_stub.errors import DomainError
    from coordinator_stub.ledger.transfers import ensure_account

    settings = _settings(database_url=args.database_url)
    if settings is None:
        return EX_CONFIG
    db = Database(settings.database_url)
    where = Database.redact(settings.database_url)
    now = utcnow()
    try:
        with _database_step("aitbc-coordinator keys", where, refused_code=EX_CONFIG):
            prepare_for_serve(db)
            if args.action == "create":
                key = generate_key(args.role)
                with db.write() as session:
                    key_id = store_key(
                        session, key=key, role=args.role, subject=args.subject, now=now
                    )
                    ensure_account(session, args.subject, now)
                sys.stdout.write(f"{key}\n")  # the key alone on stdout, for a pipe or a file
                sys.stderr.write(f"created {key_id} ({args.role} {args.subject}); shown once\n")
            elif args.action == "list":
                with db.read() as session:
                    for row in list_keys(session, subject=args.subject or None):
                        state = f"revoked {rfc3339(row.revoked_at)}" if row.revoked_at else "active"
                        sys.stdout.write(
                            f"{row.key_id}  {row.role:<6}  {row.subject}  created "
                            f"{rfc3339(row.created_at)}  last used "
                            f"{rfc3339(row.last_used_at) or 'never'}  {state}\n"
                        )
            else:
                with db.write() as session:
                    row = revoke_key(session, key_id=args.key_id, now=now)
                    sys.stdout.write(f"revoked {row.key_id} at {rfc3339(row.revoked_at)}\n")
    except DomainError as exc:
        sys.stderr.write(f"aitbc-coordinator keys: {exc.detail}\n")
        return EX_DATAERR
    finally:
        db.dispose()
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
    log_json = {"auto": None, "json": True, "console": False}[settings.log_format]
    configure_logging(settings.log_level, json=log_json)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its schema check chatters at info
    get_logger("coordinator").info(
        "coordinator_starting",
        version=__version__,
        url=f"http://{settings.host}:{settings.port}",
        database=where,
        access_log=settings.access_log,
    )
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
            log_config=None,  # uvicorn's loggers go to the root handler: the same JSON lines
            access_log=False,  # routes/metrics.py writes the access log, with the route and role
            http=with_header_timeout(settings.header_timeout_s),
            limit_concurrency=settings.max_connections,
        )
    )
    server.run()
    return 0 if server.started else 3  # 3: uvicorn's "startup failed"
