"""Wiring: settings → engine, cache, search backend, domain objects → servicers and workers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecom_runtime.auth import remote_authenticator
from ecom_runtime.db import create_engine
from ecom_runtime.events import EventConsumer, OutboxRelay, connect_jetstream, prune_inbox
from ecom_runtime.server import App, Registration
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecommerce.events.v1 import events_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog_service.cache import CatalogCache
from catalog_service.categories import Categories
from catalog_service.config import CatalogSettings
from catalog_service.images import Images
from catalog_service.inventory import Inventory
from catalog_service.products import SUBJECT_PRODUCT_CHANGED, Products
from catalog_service.search import SearchBackend
from catalog_service.search_postgres import PostgresSearch
from catalog_service.servicer import (
    Catalog,
    CatalogInternalServicer,
    CategoryServicer,
    InventoryServicer,
    ProductServicer,
)
from catalog_service.store import inbox, outbox

if TYPE_CHECKING:
    from catalog_service.search_elasticsearch import ElasticsearchSearch

Settings = CatalogSettings


def elasticsearch_backend(settings: CatalogSettings) -> ElasticsearchSearch:
    # Imported only when configured: the client is heavy and most installs use Postgres.
    from elasticsearch import AsyncElasticsearch

    from catalog_service.search_elasticsearch import ElasticsearchSearch

    return ElasticsearchSearch(
        AsyncElasticsearch(settings.elasticsearch_url), settings.elasticsearch_index
    )


@dataclass
class Parts:
    """Everything a catalog process holds, built once (serve, warm-cache)."""

    settings: CatalogSettings
    engine: AsyncEngine
    relay: OutboxRelay
    cache: CatalogCache
    inventory: Inventory
    images: Images
    catalog: Catalog


def build_parts(settings: CatalogSettings) -> Parts:
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    relay = OutboxRelay(engine, outbox, settings.outbox_poll_seconds)
    cache = CatalogCache(settings.redis_url, settings.catalog_cache_ttl_seconds)
    product_store = Products(engine, events_committed=relay.wake)

    async def committed(product_ids: Sequence[uuid.UUID] = ()) -> None:
        relay.wake()
        await cache.invalidate()

    inventory = Inventory(engine, on_stock_changed=product_store.announce, after_commit=committed)
    images = Images(engine, settings, announce=product_store.announce, after_commit=committed)
    search: SearchBackend = PostgresSearch(engine)
    if settings.catalog_search_backend == "elasticsearch":
        search = elasticsearch_backend(settings)
    elif settings.catalog_search_backend != "postgres":
        raise SystemExit("CATALOG_SEARCH_BACKEND must be 'postgres' or 'elasticsearch'")
    catalog = Catalog(engine, product_store, Categories(engine), images, search, cache)
    return Parts(settings, engine, relay, cache, inventory, images, catalog)


def build_app(settings: CatalogSettings | None = None) -> App:
    settings = settings or CatalogSettings()
    parts = build_parts(settings)
    engine, relay, cache, inventory, images, catalog = (
        parts.engine,
        parts.relay,
        parts.cache,
        parts.inventory,
        parts.images,
        parts.catalog,
    )
    search = catalog.search
    use_elasticsearch = settings.catalog_search_backend == "elasticsearch"

    async def events() -> None:
        nc, js = await connect_jetstream(settings.nats_url)
        jobs = [relay.run(js)]
        if use_elasticsearch:
            await search.ensure_index()  # type: ignore[attr-defined]
            jobs.append(
                EventConsumer(
                    engine=engine,
                    inbox=inbox,
                    js=js,
                    durable="catalog-search-index",
                    subject=SUBJECT_PRODUCT_CHANGED,
                    message_type=events_pb2.ProductChanged,
                    handler=lambda _conn, event: search.apply(event),  # type: ignore[attr-defined]
                ).run()
            )
        try:
            await asyncio.gather(*jobs)
        finally:
            await nc.close()

    async def housekeeping() -> None:
        while True:
            await prune_inbox(engine, inbox, keep_seconds=8 * 24 * 3600)
            await asyncio.sleep(3600)

    async def sweeper() -> None:
        await inventory.run_sweeper(settings.catalog_reservation_sweep_seconds)

    async def close() -> None:
        await cache.close()
        await engine.dispose()

    services = catalog_pb2.DESCRIPTOR.services_by_name
    return App(
        name="catalog",
        settings=settings,
        authenticator=remote_authenticator(
            settings.auth_grpc_addr, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
        services=[
            Registration(
                catalog_pb2_grpc.add_ProductServiceServicer_to_server,
                ProductServicer(catalog),
                services["ProductService"].full_name,
            ),
            Registration(
                catalog_pb2_grpc.add_CategoryServiceServicer_to_server,
                CategoryServicer(catalog),
                services["CategoryService"].full_name,
            ),
            Registration(
                catalog_pb2_grpc.add_InventoryServiceServicer_to_server,
                InventoryServicer(catalog, inventory),
                services["InventoryService"].full_name,
            ),
            Registration(
                catalog_pb2_grpc.add_CatalogInternalServiceServicer_to_server,
                CatalogInternalServicer(catalog, inventory),
                services["CatalogInternalService"].full_name,
            ),
        ],
        startup=[images.ensure_bucket],
        background=[
            events,
            sweeper,
            images.run_checker,
            cache.retry_pending_invalidation,
            housekeeping,
        ],
        on_shutdown=[close],
    )
