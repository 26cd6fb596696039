"""Persistence: tables, migrations and the tenant-scoped repository."""
