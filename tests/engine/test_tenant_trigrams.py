"""``co``, ``sw`` and ``ew`` search one organisation's trigrams (PostgreSQL, ``btree_gin``)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

TRIGRAM_KEYS = ("user_name_key", "display_name_key", "family_name_key", "given_name_key")


@pytest.mark.parametrize("key", TRIGRAM_KEYS)
async def test_the_trigram_indexes_lead_with_the_organisation(
    engine: AsyncEngine, key: str
) -> None:
    """The organisation is the first column of each trigram index (``btree_gin``), so a
    fragment frequent in other organisations costs this one nothing: the index yields the
    caller's matches alone. (Which plan PostgreSQL picks depends on the data; the benchmark's
    ``co`` case at 1,000,000 users measures it.)"""
    if engine.dialect.name != "postgresql":
        pytest.skip("the index is PostgreSQL's")
    async with engine.connect() as connection:
        definition = (
            await connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": f"ix_resources_{key}_trgm"},
            )
        ).scalar_one()
    assert f"gin (tenant_id, {key} gin_trgm_ops)" in definition
