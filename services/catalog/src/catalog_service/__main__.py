"""`python -m catalog_service serve | migrate | seed | reindex | warm-cache`."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from ecom_runtime.cli import run_service_cli

from catalog_service.config import CatalogSettings
from catalog_service.seed import add_seed_command, run_seed
from catalog_service.server import build_app

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def reindex(args: argparse.Namespace) -> None:
    """Rebuilds the Elasticsearch index from PostgreSQL, then swaps it in (zero downtime)."""
    from ecom_runtime.db import create_engine
    from elasticsearch import AsyncElasticsearch

    from catalog_service.events import live_snapshots
    from catalog_service.search_elasticsearch import ElasticsearchSearch

    settings = CatalogSettings()
    if not settings.elasticsearch_url:
        raise SystemExit("set ELASTICSEARCH_URL to the Elasticsearch server to reindex")

    async def run() -> None:
        engine = create_engine(settings.database_url, pool_size=2)
        client = AsyncElasticsearch(settings.elasticsearch_url)
        started = time.monotonic()
        try:
            search = ElasticsearchSearch(client, settings.elasticsearch_index)
            count = await search.reindex(live_snapshots(engine))
        finally:
            await client.close()
            await engine.dispose()
        print(f"indexed {count} products in {time.monotonic() - started:.1f} s")

    asyncio.run(run())


def warm_cache(args: argparse.Namespace) -> None:
    """Fills Redis with the pages shoppers open first, so a fresh deploy starts fast."""
    from catalog_service.warmup import warm

    count = asyncio.run(warm(CatalogSettings(), product_count=args.products))
    print(f"cached {count} responses")


def configure(commands: argparse._SubParsersAction) -> None:
    add_seed_command(commands)
    commands.add_parser("reindex", help="rebuild the Elasticsearch index from PostgreSQL")
    warm = commands.add_parser("warm-cache", help="cache the category tree and first pages")
    warm.add_argument("--products", type=int, default=1000, help="also cache this many products")


def main() -> None:
    run_service_cli(
        "catalog",
        CatalogSettings(),
        build_app,
        MIGRATIONS,
        extra_commands={"seed": run_seed, "reindex": reindex, "warm-cache": warm_cache},
        configure_parser=configure,
    )


if __name__ == "__main__":
    main()
