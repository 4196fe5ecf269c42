"""A deterministic sample catalog: `python -m catalog_service seed`.

`seed_catalog` writes a fixed 3-level category tree and `products` generated products straight
into the catalog's own tables. The same `seed` always gives the same ids, SKUs, names, prices
and stock (only the timestamps follow the clock), and product `i` does not depend on how many
are generated, so `--products 50000` after a 1,000-product seed adds the other 49,000. Existing
rows are never changed (ON CONFLICT DO NOTHING): running it twice leaves the same data.

Seeded products are in PostgreSQL search at once (its search document is a generated column).
With CATALOG_SEARCH_BACKEND=elasticsearch they are not indexed (seeding emits no events):
run `python -m catalog_service reindex` afterwards.

The demo accounts belong to the auth service: the local stack makes them through it
(`ecom_stack.sample_data`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import time
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog_service.store import categories

# Fixed, so ids are the same on every machine: uuid5(NAMESPACE, "category/<slug>") etc.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "seed.catalog.ecommerce.example")

# department -> (category -> leaf nouns (singular; a leaf category is named by the plural),
# qualifiers used in product names (materials, flavours, features), price range in dollars).
TREE: dict[str, tuple[dict[str, list[str]], list[str], tuple[int, int]]] = {
    "Electronics": (
        {
            "Audio": ["Headphone", "Speaker", "Soundbar", "Turntable"],
            "Computers": ["Laptop", "Monitor", "Keyboard", "Webcam"],
            "Photo & Video": ["Camera", "Lens", "Tripod"],
            "Phones": ["Smartphone", "Phone Case", "Charger"],
        },
        ["Wireless", "Bluetooth", "USB-C", "4K", "Noise-Cancelling", "Aluminium"],
        (10, 2000),
    ),
    "Home & Kitchen": (
        {
            "Cookware": ["Frying Pan", "Saucepan", "Dutch Oven"],
            "Coffee & Tea": ["Espresso Machine", "French Press", "Tea Kettle", "Coffee Grinder"],
            "Tableware": ["Dinner Plate", "Mug", "Wine Glass"],
            "Bakeware": ["Baking Sheet", "Cake Pan", "Crème Brûlée Ramekin"],
            "Storage": ["Food Container", "Spice Jar"],
        },
        ["Stainless Steel", "Cast Iron", "Ceramic", "Copper", "Bamboo", "Enamelled"],
        (4, 900),
    ),
    "Clothing": (
        {
            "Men's": ["Shirt", "Jacket", "Chino"],
            "Women's": ["Dress", "Blouse", "Coat"],
            "Kids": ["T-Shirt", "Hoodie", "Legging"],
            "Shoes": ["Sneaker", "Boot", "Sandal", "Loafer"],
            "Accessories": ["Belt", "Hat", "Wallet"],
        },
        ["Cotton", "Merino Wool", "Linen", "Denim", "Leather", "Crème"],
        (8, 500),
    ),
    "Grocery": (
        {
            "Pantry": ["Olive Oil", "Pasta Sauce", "Spice Blend"],
            "Snacks": ["Tortilla Chip", "Cookie", "Granola Bar"],
            "Beverages": ["Coffee Bean", "Loose-Leaf Tea", "Juice"],
            "Condiments": ["Hot Sauce", "Mustard", "Salsa"],
        },
        ["Organic", "Jalapeño", "Smoked", "Café au Lait", "Crème Fraîche", "Chipotle"],
        (1, 60),
    ),
    "Sports & Outdoors": (
        {
            "Camping": ["Tent", "Sleeping Bag", "Lantern"],
            "Cycling": ["Bike Helmet", "Bike Light", "Water Bottle"],
            "Fitness": ["Yoga Mat", "Dumbbell", "Kettlebell", "Resistance Band"],
            "Running": ["Running Shoe", "Running Vest"],
        },
        ["Ultralight", "Waterproof", "Recycled Nylon", "Carbon", "Neoprene"],
        (5, 1500),
    ),
    "Books": (
        {
            "Fiction": ["Novel", "Graphic Novel", "Short Story Collection"],
            "Non-Fiction": ["Biography", "Cookbook", "Travel Guide"],
            "Children's": ["Picture Book", "Activity Book"],
        },
        ["Hardcover", "Paperback", "Illustrated", "Signed", "Large-Print"],
        (4, 120),
    ),
    "Toys & Games": (
        {
            "Games & Puzzles": ["Board Game", "Card Game", "Puzzle"],
            "Construction": ["Building Set", "Marble Run"],
            "Outdoor Play": ["Kite", "Scooter", "Frisbee"],
        },
        ["Wooden", "Plush", "Magnetic", "Glow-in-the-Dark"],
        (3, 300),
    ),
    "Beauty & Health": (
        {
            "Skincare": ["Face Cream", "Serum", "Cleanser"],
            "Hair Care": ["Shampoo", "Conditioner", "Hair Dryer"],
            "Fragrance": ["Perfume", "Cologne", "Scented Candle"],
            "Wellness": ["Vitamin", "Massage Gun", "Essential Oil"],
        },
        ["Crème", "Aloe", "Argan", "Unscented", "Rosé", "Charcoal"],
        (2, 250),
    ),
}
BRANDS = [
    "Acme", "Northwind", "Café Bleu", "Maison Crème", "Lumen", "Fjordline", "Terra",
    "Élan", "Orbit", "Sable", "Juniper", "Atlas", "Pioneer", "Vireo", "Kestrel", "Bravo",
]  # fmt: skip
ADJECTIVES = [
    "Classic", "Premium", "Compact", "Deluxe", "Everyday", "Essential", "Modern", "Vintage",
    "Heritage", "Travel", "Signature", "Eco", "Artisan", "Studio", "Urban",
]  # fmt: skip
MODELS = ["", "", "", " Mini", " Max", " Pro", " Plus", " II", " S"]
OPENINGS = [
    "The {adjective} {noun} from {brand}.",
    "{brand}'s {qualifier} {noun}, made to be used every day.",
    "Our best-selling {qualifier} {noun}.",
    "The {adjective} {noun} everyone keeps asking us about.",
]
CLOSINGS = [
    "Built to last and easy to care for.",
    "Ships in recyclable packaging.",
    "Backed by a two-year warranty.",
    "A favourite for gifting.",
    "Tested by our team for six months before launch.",
    "Limited run: once it is gone, it is gone.",
    "",
]
LOW_STOCK_THRESHOLD = 5  # the column's default


@dataclass(frozen=True)
class SeedSummary:
    categories: int  # in the sample tree
    products: int  # generated
    new_categories: int  # inserted by this run (the rest existed)
    new_products: int
    seconds: float
    # slug -> id of the row in the database (an existing category with that slug is reused).
    category_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    product_ids: list[uuid.UUID] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)  # slugs of the top level

    def line(self) -> str:
        return (
            f"seeded catalog: {self.categories} categories ({self.new_categories} new), "
            f"{self.products} products ({self.new_products} new) in {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class _Category:
    slug: str
    name: str
    parent: str | None  # parent's slug
    noun: str | None  # leaves only: the products' noun


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower().replace("'", "")).strip("-")


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def category_tree() -> list[list[_Category]]:
    """The sample tree, one list per level (departments, categories, leaves)."""
    levels: list[list[_Category]] = [[], [], []]
    seen: set[str] = set()

    def add(level: int, name: str, parent: str | None, noun: str | None = None) -> str:
        slug = slugify(name)
        if slug in seen:  # slugs are unique in the whole table
            slug = f"{parent}-{slug}"
        seen.add(slug)
        levels[level].append(_Category(slug, name, parent, noun))
        return slug

    for department, (children, _, _) in TREE.items():
        top = add(0, department, None)
        for category, nouns in children.items():
            middle = add(1, category, top)
            for noun in nouns:
                add(2, plural(noun), middle, noun)
    return levels


class ProductRow(NamedTuple):
    """A products row as seeded; search_document is generated by PostgreSQL, never written."""

    id: uuid.UUID
    sku: str
    name: str
    description: str
    price_cents: int
    currency: str
    category_id: uuid.UUID | None
    image_urls: list[str]
    active: bool
    on_hand: int
    reserved: int
    low_stock_threshold: int
    low_stock: bool
    version: int
    created_at: datetime
    updated_at: datetime


_PRODUCT_COLUMNS = ", ".join(ProductRow._fields)


def generate_products(
    count: int,
    seed: int,
    levels: list[list[_Category]],
    category_ids: Mapping[str, uuid.UUID],
    now: datetime,
) -> list[ProductRow]:
    """Product `i` depends only on `seed` and `i` (one random stream, drawn in order)."""
    rng = random.Random(seed)
    department_of = {c.slug: c.parent or c.slug for c in levels[1]}
    department_of.update({c.slug: department_of[c.parent or ""] for c in levels[2]})
    departments = {slugify(name): (quals, prices) for name, (_, quals, prices) in TREE.items()}
    leaves, middles = levels[2], levels[1]
    rows: list[ProductRow] = []
    for i in range(count):
        # Mostly leaves; some products sit on a middle category, a few have none.
        roll = rng.random()
        if roll < 0.90:
            category: _Category | None = rng.choice(leaves)
        elif roll < 0.99:
            category = rng.choice(middles)
        else:
            category = None
        if category is None:
            noun, quals, prices, code = "Gift Card", ["Digital", "Printed"], (10, 200), "GEN"
        else:
            department = department_of[category.slug]
            noun = category.noun or rng.choice(
                [c.noun for c in leaves if c.parent == category.slug and c.noun]
            )
            (quals, prices), code = departments[department], department[:3].upper()
        brand, adjective, qualifier = rng.choice(BRANDS), rng.choice(ADJECTIVES), rng.choice(quals)
        parts = [brand, adjective if rng.random() < 0.7 else "", qualifier, noun]
        model = rng.choice(MODELS) or (f" {rng.randint(1, 9) * 100}" if rng.random() < 0.5 else "")
        name = " ".join(p for p in parts if p) + model
        words = {"adjective": adjective.lower(), "noun": noun.lower(), "brand": brand}
        opening = rng.choice(OPENINGS).format(**words, qualifier=qualifier)
        description = f"{opening} {rng.choice(CLOSINGS)}".strip()
        # Log-uniform in the department's range ($1 to $2,000 overall), mostly priced at .99.
        dollars = round(math.exp(rng.uniform(math.log(prices[0]), math.log(prices[1]))))
        price_cents = dollars * 100 - (1 if dollars > 1 and rng.random() < 0.7 else 0)
        stock_roll = rng.random()
        if stock_roll < 0.08:
            on_hand = 0
        elif stock_roll < 0.18:
            on_hand = rng.randint(1, LOW_STOCK_THRESHOLD - 1)
        else:
            on_hand = rng.randint(LOW_STOCK_THRESHOLD, 500)
        active = rng.random() >= 0.03
        created_at = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
        rows.append(
            ProductRow(
                id=uuid.uuid5(NAMESPACE, f"product/{seed}/{i}"),
                sku=f"{code}-{seed}-{i:06d}",
                name=name,
                description=description,
                price_cents=price_cents,
                currency="USD",
                category_id=category_ids[category.slug] if category else None,
                image_urls=[],  # real images need uploads through S3
                active=active,
                on_hand=on_hand,
                reserved=0,  # a reservation would need its rows (and expiry) too
                low_stock_threshold=LOW_STOCK_THRESHOLD,
                low_stock=on_hand <= LOW_STOCK_THRESHOLD,  # sellable = on_hand - reserved
                version=1,
                created_at=created_at,
                updated_at=created_at,
            )
        )
    return rows


async def _insert_categories(
    conn: AsyncConnection, levels: list[list[_Category]]
) -> tuple[int, dict[str, uuid.UUID]]:
    """Level by level, so a child points at whichever row holds its parent's slug."""
    inserted = 0
    ids: dict[str, uuid.UUID] = {}
    for level in levels:
        rows = [
            {
                "id": uuid.uuid5(NAMESPACE, f"category/{c.slug}"),
                "name": c.name,
                "slug": c.slug,
                "parent_id": ids[c.parent] if c.parent else None,
            }
            for c in level
        ]
        insert = pg_insert(categories).values(rows).on_conflict_do_nothing()
        inserted += len((await conn.execute(insert.returning(categories.c.id))).all())
        slugs = [c.slug for c in level]
        found = await conn.execute(
            select(categories.c.slug, categories.c.id).where(categories.c.slug.in_(slugs))
        )
        ids.update({row.slug: row.id for row in found})
    return inserted, ids


async def _insert_products(conn: AsyncConnection, rows: list[ProductRow]) -> int:
    """COPY into a temporary table, then one INSERT ... ON CONFLICT DO NOTHING (COPY itself
    cannot skip rows that exist). Any unique conflict skips the row: id or live SKU."""
    raw = await conn.get_raw_connection()
    pg = raw.driver_connection  # psycopg.AsyncConnection, inside SQLAlchemy's transaction
    assert pg is not None
    async with pg.cursor() as cursor:
        await cursor.execute(
            "CREATE TEMP TABLE seed_products (LIKE catalog.products INCLUDING DEFAULTS)"
            " ON COMMIT DROP"
        )
        async with cursor.copy(f"COPY seed_products ({_PRODUCT_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        await cursor.execute(
            f"INSERT INTO catalog.products ({_PRODUCT_COLUMNS}) "  # noqa: S608 (constants)
            f"SELECT {_PRODUCT_COLUMNS} FROM seed_products ON CONFLICT DO NOTHING"
        )
        return int(cursor.rowcount)


async def _retire_cached_pages(redis_url: str) -> None:
    """Seeding bypasses the service, so nothing bumped the cache version: cached lists and
    pages built before the new rows would be served until their TTL. INCR retires them all
    (see catalog_service.cache). Redis is optional here as it is for the service."""
    import redis.asyncio as redis
    from redis.exceptions import RedisError

    from catalog_service.cache import VERSION_KEY

    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.incr(VERSION_KEY)
    except (RedisError, OSError):
        pass
    finally:
        await client.aclose()


async def seed_catalog(
    engine: AsyncEngine, products: int = 1000, seed: int = 42, *, redis_url: str | None = None
) -> SeedSummary:
    """Loads the sample tree and `products` products (idempotent, see the module docstring).

    Writes straight into the catalog's tables and emits no events: nobody else keeps a copy of
    products that were never announced, and a cart or order reads them by gRPC when used.
    """
    if products < 0 or seed < 0:
        raise ValueError("products and seed must be >= 0")
    began = time.monotonic()
    levels = category_tree()
    async with engine.begin() as conn:
        new_categories, ids = await _insert_categories(conn, levels)
        rows = generate_products(products, seed, levels, ids, datetime.now(UTC))
        new_products = await _insert_products(conn, rows)
    if new_products:
        # Fresh statistics and visibility map now rather than whenever autovacuum comes by:
        # without them counting a filtered list takes five times longer.
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM (ANALYZE) catalog.products"))
    # No events for rows that never went through the service; retire cached pages instead.
    if redis_url and (new_categories or new_products):
        await _retire_cached_pages(redis_url)
    return SeedSummary(
        categories=sum(map(len, levels)),
        products=products,
        new_categories=new_categories,
        new_products=new_products,
        seconds=time.monotonic() - began,
        category_ids=ids,
        product_ids=[r.id for r in rows],
        departments=[c.slug for c in levels[0]],
    )


# -- command line: `python -m catalog_service seed [--products N] [--seed S]` --


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return number


def add_seed_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("seed", help="load the deterministic sample catalog")
    parser.add_argument("--products", type=_non_negative, default=1000)
    parser.add_argument("--seed", type=_non_negative, default=42)


async def _warm_after_import(nats_url: str) -> str:
    """Asks the running catalog to warm its cache (its warm-cache job, once, by one replica)."""
    import nats
    from ecom_runtime.jobs import ensure_stream, trigger

    from catalog_service.server import WARM_CACHE_JOB

    try:
        nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0)
    except Exception:
        return "; NATS is not reachable, so the cache warms on first reads"
    try:
        await ensure_stream(nc)
        await trigger(nc.jetstream(), "catalog", WARM_CACHE_JOB)
    finally:
        await nc.close()
    return "; the catalog warms its cache now"


def run_seed(args: argparse.Namespace) -> None:
    from ecom_runtime.db import create_engine

    from catalog_service.config import CatalogSettings

    settings = CatalogSettings()

    async def run() -> str:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            summary = await seed_catalog(
                engine, args.products, args.seed, redis_url=settings.redis_url
            )
        finally:
            await engine.dispose()
        return summary.line() + await _warm_after_import(settings.nats_url)

    print(asyncio.run(run()), flush=True)
