"""What the catalog service is made of; ecom_runtime.server runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecom_runtime.db import Database
from ecom_runtime.jobs import ScheduledJob
from ecom_runtime.server import App, Consumer, every
from ecommerce.events.v1 import events_pb2

from catalog_service.cache import CatalogCache
from catalog_service.categories import Categories
from catalog_service.config import CatalogSettings
from catalog_service.events import PRODUCT_CHANGED, PUBLISHED
from catalog_service.images import Images
from catalog_service.inventory import Inventory
from catalog_service.products import Products
from catalog_service.search import SearchBackend
from catalog_service.search_postgres import PostgresSearch
from catalog_service.servicers import (
    CatalogInternalServicer,
    CategoryServicer,
    InventoryServicer,
    ProductServicer,
    Reads,
)
from catalog_service.store import inbox, outbox

WARM_CACHE_JOB = "warm-cache"

if TYPE_CHECKING:
    from catalog_service.search_elasticsearch import ElasticsearchSearch


def elasticsearch_backend(settings: CatalogSettings) -> ElasticsearchSearch:
    # Imported only when configured: the client is heavy and most installs use Postgres.
    from elasticsearch import AsyncElasticsearch

    from catalog_service.search_elasticsearch import ElasticsearchSearch

    return ElasticsearchSearch(
        AsyncElasticsearch(settings.elasticsearch_url, request_timeout=5),
        settings.elasticsearch_index,
    )


@dataclass
class Parts:
    """Everything a catalog process holds, built once (serve, warm-cache)."""

    db: Database
    cache: CatalogCache
    products: Products
    inventory: Inventory
    images: Images
    reads: Reads


def build_parts(settings: CatalogSettings) -> Parts:
    db = Database.for_service(settings, outbox=outbox, inbox=inbox, subjects=PUBLISHED)
    cache = CatalogCache(settings.redis_url, settings.catalog_cache_ttl_seconds)
    products = Products(db, cache)
    search: SearchBackend = PostgresSearch(db.engine)
    if settings.catalog_search_backend == "elasticsearch":
        search = elasticsearch_backend(settings)
    elif settings.catalog_search_backend != "postgres":
        raise SystemExit("CATALOG_SEARCH_BACKEND must be 'postgres' or 'elasticsearch'")
    return Parts(
        db=db,
        cache=cache,
        products=products,
        inventory=Inventory(db, cache),
        images=Images(db, settings, cache),
        reads=Reads(db, products, Categories(db, cache), search, cache),
    )


def build_app(settings: CatalogSettings | None = None) -> App:
    settings = settings or CatalogSettings()
    parts = build_parts(settings)
    consumers = []
    tasks = [
        every(settings.catalog_reservation_sweep_seconds, parts.inventory.sweep_expired),
        every(settings.catalog_image_check_seconds, parts.images.attach_uploaded),
        parts.cache.retry_pending_invalidation,
    ]
    search = parts.reads.search
    if settings.catalog_search_backend == "elasticsearch":
        # In the background, retried: Elasticsearch being down must not stop the catalog
        # from starting (searches answer 503 until it is back).
        tasks.append(search.ensure_index)  # type: ignore[attr-defined]
        consumers.append(
            Consumer(
                "catalog-search-index",
                PRODUCT_CHANGED,
                events_pb2.ProductChanged,
                lambda _tx, event: search.apply(event),  # type: ignore[attr-defined]
            )
        )

    async def warm_cache(products: int = 1000) -> None:
        from catalog_service.warmup import warm_with  # warmup builds on this module

        if not isinstance(products, int) or not 0 <= products <= 100_000:
            raise ValueError("products must be an integer from 0 to 100,000")
        await warm_with(parts, product_count=products)

    return App(
        name="catalog",
        settings=settings,
        db=parts.db,
        servicers=[
            ProductServicer(parts.reads, parts.images),
            CategoryServicer(parts.reads),
            InventoryServicer(parts.inventory),
            CatalogInternalServicer(parts.products, parts.inventory),
        ],
        consumers=consumers,
        tasks=tasks,
        # Run after bulk imports (the seed command triggers it) and nightly.
        jobs=[ScheduledJob(WARM_CACHE_JOB, 24 * 3600, warm_cache)],
        startup=[parts.images.ensure_bucket],
        closing=[parts.cache.close],
    )
