"""The ``scim`` command: ``scim serve`` and ``scim db upgrade``."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
from collections.abc import Sequence

from scim.settings import Settings
from scim.storage import database


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help="SQLAlchemy URL (default: $SCIM_DATABASE_URL, else a SQLite file scim.db)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    if args.database:
        os.environ["SCIM_DATABASE_URL"] = args.database
    return Settings.from_env()


async def _upgrade(settings: Settings) -> None:
    engine = database.create_engine(settings.database_url)
    try:
        await database.upgrade(engine)
    finally:
        await engine.dispose()


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    if args.demo and not ipaddress.ip_address(_resolve(args.host)).is_loopback:
        print("--demo is refused unless the server listens on loopback", file=sys.stderr)
        return 2
    if args.migrate or args.demo:
        asyncio.run(_upgrade(settings))
    if args.demo:
        from scim import demo

        created = asyncio.run(demo.load(settings))
        print(f"Demo data: {created} resources created" if created else "Demo data present")
    print(f"SCIM API: http://{args.host}:{args.port}{settings.base_path}/Users", flush=True)
    uvicorn.run(
        "scim.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0


def _resolve(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _db(args: argparse.Namespace) -> int:
    asyncio.run(_upgrade(_settings(args)))
    print("Database is at the latest revision")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scim", description="SCIM 2.0 provisioning server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--migrate", action="store_true", help="apply migrations before starting")
    serve.add_argument(
        "--demo", action="store_true", help="migrate and load demo data (loopback only)"
    )
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False)
    _database_option(serve)
    serve.set_defaults(handler=_serve)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply all migrations")
    _database_option(upgrade)
    upgrade.set_defaults(handler=_db)

    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
