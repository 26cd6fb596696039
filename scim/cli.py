"""The ``scim`` command: the server, the schema, and the operator's tools.

Scripts outside the project drive ``scim serve``, ``scim db upgrade``, ``scim tenant add``
and ``scim token issue``; their flags and output stay as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import os
import ssl
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from scim import observability
from scim.app import DOMAIN
from scim.hooks import Command, Demo
from scim.settings import Settings
from scim.storage import database


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help="SQLAlchemy URL (default: $SCIM_DATABASE_URL, else a SQLite file scim.db)",
    )


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The environment's settings, with what the command line says instead."""
    if args.database:
        overrides["database_url"] = args.database
    return Settings.from_env(**overrides)


async def _upgrade(settings: Settings) -> None:
    engine = database.create_engine(settings.database_url)
    try:
        await database.upgrade(engine)
    finally:
        await engine.dispose()


def _resolve(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _tls_options(args: argparse.Namespace) -> dict[str, Any] | str:
    """uvicorn's TLS options from --tls-cert, --tls-key and --client-ca, or why they are wrong.

    With --client-ca the handshake asks for a client certificate (CERT_OPTIONAL: bearer tokens
    still work) and refuses one that does not lead to those CAs; the app gets the certificate
    through the ASGI TLS extension (and the same bundle, ``_serve``).
    """
    if not args.tls_cert:
        if args.tls_key or args.client_ca:
            return "--tls-key and --client-ca need --tls-cert"
        return {}
    for path in (args.tls_cert, args.tls_key, args.client_ca):
        if path and not os.path.isfile(path):
            return f"no such file: {path}"
    from scim.auth.tls import TLSHttpToolsProtocol

    options: dict[str, Any] = {
        "ssl_certfile": args.tls_cert,
        "ssl_keyfile": args.tls_key,
        "http": TLSHttpToolsProtocol,
    }
    if args.client_ca:
        options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
        options["ssl_ca_certs"] = args.client_ca
    return options


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    if args.demo:
        settings = replace(settings, demo=True)  # the demo login (/session/demo)
    if args.client_ca and not settings.ca_bundle:
        settings = replace(settings, ca_bundle=os.path.abspath(args.client_ca))
    if settings.demo and not ipaddress.ip_address(_resolve(args.host)).is_loopback:
        print("--demo is refused unless the server listens on loopback", file=sys.stderr)
        return 2
    tls = _tls_options(args)
    if isinstance(tls, str):
        print(tls, file=sys.stderr)
        return 2
    if args.migrate or args.demo:
        asyncio.run(_upgrade(settings))
    scheme = "https" if tls else "http"
    base = f"{scheme}://{args.host}:{args.port}{settings.base_path}"
    if args.demo:
        loaded = _load_demo(settings)
        if loaded is None:
            return 2
        print("Demo data loaded" if loaded.created else "Demo data already present")
        print(f"SCIM API: {base}/Users")
        print(f"Bearer token for the demo identity system of {loaded.organisation} (1 day):")
        print(f"  {loaded.token}")
        print(f"Try: curl -H 'Authorization: Bearer {loaded.token}' {base}/Users")
    else:
        print(f"SCIM API: {base}/Users")
    client = f"{scheme}://{args.host}:{args.port}/admin/"
    if args.demo:
        print(f"Browser client (pick a demo administrator): {client}", flush=True)
    else:
        print(f"Browser client: {client}", flush=True)
    target: Any = "scim.app:create_app"
    if args.workers > 1:
        # Worker processes import the app themselves and read their settings from the
        # environment they inherit: these settings, written there once.
        # One cursor secret for them all, so any worker takes another's cursors.
        os.environ.update(settings.with_cursor_secret().environment())
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its metrics there and /metrics, in any worker, sums them all.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="scim-metrics-")
    else:
        from scim.app import create_app

        target = create_app(settings)
    from scim.api.wire import HttpProtocol

    options: dict[str, Any] = {"http": HttpProtocol, **tls}
    uvicorn.run(
        target,
        factory=isinstance(target, str),
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        log_level=args.log_level,
        log_config=observability.log_config(args.log_level, access_log=args.access_log),
        # uvicorn's own access log would print query strings (names, e-mail addresses);
        # "scim.access" logs each request without them.
        access_log=False,
        # The TCP peer must stay what it is: trusted proxies are recognised by it.
        proxy_headers=False,
        **options,
    )
    return 0


def _db(args: argparse.Namespace) -> int:
    asyncio.run(_upgrade(_settings(args)))
    print("Database is at the latest revision")
    return 0


# -- operator commands ------------------------------------------------------------------


def _operator_command(
    action: Callable[[Any, argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace], int]:
    """Run an operator action in one transaction; an OperatorError is exit code 2."""

    def run(args: argparse.Namespace) -> int:
        from scim.auth.verified import CONFIRM_WAIT
        from scim.operator import OperatorError, operating

        async def main() -> int:
            settings = _settings(args)
            engine = database.create_engine(settings.database_url)
            actor = f"operator:{getpass.getuser()}"
            try:
                async with operating(engine, actor, DOMAIN.from_settings(settings)) as operator:
                    status = await action(operator, args)
            finally:
                await engine.dispose()
            if operator.unconfirmed:
                print(
                    f"scim: {operator.unconfirmed} server worker(s) did not confirm within "
                    f"{CONFIRM_WAIT:.0f} s that they dropped the credentials they kept; they "
                    "drop them once they read the change",
                    file=sys.stderr,
                )
            return status

        try:
            return asyncio.run(main())
        except OperatorError as error:
            print(f"scim: {error}", file=sys.stderr)
            return 2

    return run


async def _tenant_add(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.add_tenant(args.org_number, args.name, args.kind)
    print(f"Added {tenant.name} ({tenant.org_number}, {tenant.kind})")
    return 0


async def _tenant_list(operator: Any, args: argparse.Namespace) -> int:
    for tenant in await operator.tenants():
        services = ",".join(tenant["agreements"]) or "-"
        print(
            f"{tenant['org_number']}  {tenant['kind']:<6}  {tenant['name']}  "
            f"administrators={tenant['administrators']}  agreements={services}"
        )
    return 0


async def _tenant_agreements(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    await operator.set_agreements(tenant, args.services)
    print(f"{tenant.name} has agreements for: {', '.join(sorted(args.services)) or 'nothing'}")
    return 0


async def _admin_add(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    await operator.add_administrator(
        tenant, args.hsa_id, args.given_name, args.family_name, args.email
    )
    print(f"{args.hsa_id.upper()} administers {tenant.name}")
    return 0


async def _admin_remove(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    await operator.remove_administrator(tenant, args.hsa_id)
    print(f"{args.hsa_id.upper()} no longer administers {tenant.name}")
    return 0


async def _admin_list(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    for admin in await operator.administrators(tenant):
        print(f"{admin['hsa_id']}  {admin['given_name']} {admin['family_name']}  {admin['email']}")
    return 0


async def _client_add(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    client_id = await operator.register_client(
        tenant, args.name, hsa_id=args.hsa_id, fingerprint=args.fingerprint
    )
    print(f"Registered system client {client_id} for {tenant.name}")
    return 0


async def _client_list(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    for client in await operator.clients(tenant):
        print(
            f"{client['id']}  {client['name']}  hsa-id={client['hsa_id'] or '-'}  "
            f"fingerprint={client['fingerprint'] or '-'}"
        )
    return 0


async def _token_issue(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    token_id, token = await operator.issue_token(tenant, client_id=args.client, days=args.days)
    validity = f"for {args.days} days" if args.days else "until revoked"
    print(f"Token {token_id} for {tenant.name}, valid {validity}; it is shown only once:")
    print(token)
    return 0


async def _token_revoke(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    await operator.revoke_token(tenant, args.id)
    print(f"Revoked token {args.id}")
    return 0


async def _token_list(operator: Any, args: argparse.Namespace) -> int:
    tenant = await operator.tenant(args.tenant)
    for token in await operator.tokens(tenant):
        state = "revoked" if token["revoked"] else "active"
        expires = token["expires"].date().isoformat() if token["expires"] else "never"
        print(f"{token['id']}  {token['client']}  {state}  expires={expires}")
    return 0


async def _receiver_add(operator: Any, args: argparse.Namespace) -> int:
    from scim.events.signing import JWKS_PATH

    settings = _settings(args)
    tenant = await operator.tenant(args.tenant) if args.tenant else None
    receiver_id, token = await operator.add_receiver(
        args.service, push_url=args.push_url, tenant=tenant, aud=args.audience
    )
    heard = f"of {tenant.name}" if tenant else "of every organisation with an agreement"
    if token is None:
        print(f"Receiver {receiver_id} hears {args.service} {heard}, pushed to {args.push_url}")
    else:
        print(f"Receiver {receiver_id} hears {args.service} {heard}, by polling")
        print(f"Poll endpoint: {settings.public_url}/events/poll")
        print("Its bearer token, shown only once:")
        print(f"  {token}")
    print(f"{receiver_id} {settings.public_url}{JWKS_PATH}")
    return 0


def _lag(oldest: Any) -> str:
    if oldest is None:
        return "0s"
    from datetime import UTC, datetime

    at = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
    return f"{max(0.0, (datetime.now(UTC) - at).total_seconds()):.1f}s"


async def _receiver_list(operator: Any, args: argparse.Namespace) -> int:
    for row in await operator.receivers():
        mode = f"push {row.push_url}" if row.push_url else "poll"
        print(f"{row.id}  {row.audience}  {row.org_number or 'all'}  {mode}  aud={row.aud}")
    return 0


async def _receiver_status(operator: Any, args: argparse.Namespace) -> int:
    for row in await operator.receivers():
        state = "ok"
        if row.failures:
            retry = row.retry_at.isoformat(timespec="seconds") if row.retry_at else "-"
            state = f"failing x{row.failures} (next try {retry}): {row.last_error}"
        print(
            f"{row.id}  {row.audience}  {row.org_number or 'all'}  "
            f"pending={row.pending}  lag={_lag(row.oldest_pending)}  dead={row.dead}  "
            f"delivered={row.delivered}  {state}"
        )
    return 0


async def _receiver_remove(operator: Any, args: argparse.Namespace) -> int:
    await operator.remove_receiver(args.id)
    print(f"Removed receiver {args.id}")
    return 0


async def _receiver_replay(operator: Any, args: argparse.Namespace) -> int:
    count = await operator.replay(args.id)
    print(f"{count} dead events of receiver {args.id} are pending again")
    return 0


def _progress(message: str) -> None:
    """Progress of a long command, on stderr: stdout stays the command's output."""
    print(message, file=sys.stderr, flush=True)


async def _audit_export(operator: Any, args: argparse.Namespace) -> int:
    from scim.storage import audit

    tenant_id = (await operator.tenant(args.tenant)).id if args.tenant else None
    total = await audit.count(operator.connection, tenant_id)
    step = max(1, total // 10)
    exported = 0
    async for entry in audit.export(operator.connection, tenant_id):
        print(json.dumps(entry, ensure_ascii=False, default=str))
        exported += 1
        if exported % step == 0 or exported == total:
            _progress(f"exported {exported}/{total} audit records")
    return 0


def _domain_command(command: Command) -> Callable[[argparse.Namespace], int]:
    """Run a command of the domain in one transaction; a ValueError is exit code 2."""

    def run(args: argparse.Namespace) -> int:
        async def main() -> list[str]:
            settings = _settings(args)
            engine = database.create_engine(settings.database_url)
            try:
                async with engine.begin() as connection:
                    domain = DOMAIN.from_settings(settings)
                    return await command.run(domain, connection, args.argument)
            finally:
                await engine.dispose()

        try:
            lines = asyncio.run(main())
        except ValueError as error:
            print(f"scim: {error}", file=sys.stderr)
            return 2
        for line in lines:
            print(line)
        return 0

    return run


def _load_demo(settings: Settings) -> Demo | None:
    """The domain's demo data, loaded unless present; None (said why) if it has none."""
    loaded = asyncio.run(DOMAIN.from_settings(settings).load_demo(settings, _progress))
    if loaded is None:
        print("scim: this server's domain has no demo data", file=sys.stderr)
    return loaded


def _demo_load(args: argparse.Namespace) -> int:
    loaded = _load_demo(_settings(args))
    if loaded is None:
        return 2
    print("Demo data loaded" if loaded.created else "Demo data already present")
    print(loaded.token)
    return 0


def _parser() -> argparse.ArgumentParser:
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
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="log every request as a JSON line (no query strings)",
    )
    serve.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this PEM certificate")
    serve.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    serve.add_argument(
        "--client-ca",
        metavar="FILE",
        help="PEM bundle of the CAs (and intermediates) of accepted client certificates",
    )
    _database_option(serve)
    serve.set_defaults(handler=_serve)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply all migrations")
    _database_option(upgrade)
    upgrade.set_defaults(handler=_db)

    def command(
        group: Any,
        name: str,
        action: Callable[[Any, argparse.Namespace], Awaitable[int]],
        help: str,
        tenant: bool = True,
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=help)
        if tenant:
            sub.add_argument("--tenant", required=True, metavar="ORG_NUMBER")
        _database_option(sub)
        sub.set_defaults(handler=_operator_command(action))
        return sub

    tenant = commands.add_parser("tenant", help="organisations").add_subparsers(
        dest="tenant_command", required=True
    )
    add = command(tenant, "add", _tenant_add, "add an organisation", tenant=False)
    add.add_argument("--org-number", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=DOMAIN.tenant_kinds or None)
    command(tenant, "list", _tenant_list, "list organisations", tenant=False)
    agreements = command(tenant, "agreements", _tenant_agreements, "set the e-service agreements")
    agreements.add_argument("services", nargs="*", metavar="SERVICE")

    admin = commands.add_parser("admin", help="administrators").add_subparsers(
        dest="admin_command", required=True
    )
    admin_add = command(admin, "add", _admin_add, "register an administrator")
    admin_add.add_argument("--hsa-id", required=True)
    admin_add.add_argument("--given-name", required=True)
    admin_add.add_argument("--family-name", required=True)
    admin_add.add_argument("--email", required=True)
    admin_remove = command(admin, "remove", _admin_remove, "remove an administrator")
    admin_remove.add_argument("--hsa-id", required=True)
    command(admin, "list", _admin_list, "list administrators")

    client = commands.add_parser("client", help="system clients").add_subparsers(
        dest="client_command", required=True
    )
    client_add = command(client, "add", _client_add, "register an identity system")
    client_add.add_argument("--name", required=True)
    client_add.add_argument("--hsa-id", help="HSA-id in its function certificate")
    client_add.add_argument("--fingerprint", help="SHA-256 of its certificate, to pin it")
    command(client, "list", _client_list, "list system clients")

    token = commands.add_parser("token", help="bearer tokens").add_subparsers(
        dest="token_command", required=True
    )
    issue = command(token, "issue", _token_issue, "issue a token (printed once, last line)")
    issue.add_argument("--client", help="system client id (default: the organisation's first)")
    issue.add_argument("--days", type=int, help="validity in days (default: until revoked)")
    revoke = command(token, "revoke", _token_revoke, "revoke a token")
    revoke.add_argument("--id", required=True)
    command(token, "list", _token_list, "list tokens")

    audit = commands.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True
    )
    export = command(audit, "export", _audit_export, "export as JSON lines", tenant=False)
    export.add_argument("--tenant", metavar="ORG_NUMBER")

    receiver = commands.add_parser(
        "receiver", help="receivers of security events (RFC 9967)"
    ).add_subparsers(dest="receiver_command", required=True)
    receiver_add = command(
        receiver,
        "add",
        _receiver_add,
        "register a receiver (last line: id, JWKS URL)",
        tenant=False,
    )
    receiver_add.add_argument("--service", required=True, metavar="E_SERVICE")
    delivery = receiver_add.add_mutually_exclusive_group(required=True)
    delivery.add_argument("--push-url", metavar="URL", help="push each SET here (RFC 8935)")
    delivery.add_argument("--poll", action="store_true", help="the receiver polls (RFC 8936)")
    receiver_add.add_argument(
        "--tenant", metavar="ORG_NUMBER", help="only this organisation (its own systems)"
    )
    receiver_add.add_argument("--audience", help="the SETs' aud (default: the e-service id)")
    command(receiver, "list", _receiver_list, "list receivers", tenant=False)
    command(receiver, "status", _receiver_status, "each receiver's backlog and lag", tenant=False)
    receiver_remove = command(
        receiver, "remove", _receiver_remove, "remove a receiver", tenant=False
    )
    receiver_remove.add_argument("id", metavar="RECEIVER_ID")
    receiver_replay = command(
        receiver, "replay", _receiver_replay, "deliver dead events again", tenant=False
    )
    receiver_replay.add_argument("id", metavar="RECEIVER_ID")

    groups: dict[str, Any] = {}
    for domain_command in DOMAIN.commands:
        if domain_command.group not in groups:
            groups[domain_command.group] = commands.add_parser(
                domain_command.group, help=domain_command.group_help
            ).add_subparsers(dest=f"{domain_command.group}_command", required=True)
        sub = groups[domain_command.group].add_parser(domain_command.name, help=domain_command.help)
        sub.add_argument("argument", metavar=domain_command.argument)
        _database_option(sub)
        sub.set_defaults(handler=_domain_command(domain_command))

    demo = commands.add_parser("demo", help="demo data").add_subparsers(
        dest="demo_command", required=True
    )
    demo_load = demo.add_parser("load", help="load demo organisations, print a token")
    _database_option(demo_load)
    demo_load.set_defaults(handler=_demo_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
