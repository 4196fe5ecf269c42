"""Redis cache behaviour, S3 image uploads and the search-document migration, on real servers."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import httpx
import psycopg
import pytest
from alembic import command
from alembic.config import Config
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc

from conftest import free_port, rpc_error, service_process, violations

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@pytest.fixture
async def catalog_without_redis(stack):
    """A second catalog process whose Redis is a closed port: Redis 'down' from the start."""
    closed_port = f"redis://127.0.0.1:{free_port()}/0"
    async with service_process(stack, "catalog", REDIS_URL=closed_port) as (_, address):
        async with grpc.aio.insecure_channel(address) as channel:
            yield catalog_pb2_grpc.ProductServiceStub(channel)


async def test_reads_and_writes_work_with_redis_down(catalog_without_redis, make_product, admin):
    product = await make_product(name="No Cache", price_cents=700)
    stub = catalog_without_redis
    assert (await stub.GetProduct(pb.GetProductRequest(id=product.id))).name == "No Cache"
    listed = await stub.ListProducts(pb.ListProductsRequest(page_size=5))
    assert listed.total_size >= 1
    updated = await stub.UpdateProduct(
        pb.UpdateProductRequest(id=product.id, price_cents=650), metadata=admin
    )
    assert updated.price_cents == 650
    assert (await stub.GetProduct(pb.GetProductRequest(id=product.id))).price_cents == 650


async def test_every_write_invalidates_cached_lists(products, make_tree, make_product, admin):
    tree = await make_tree()
    listing = pb.ListProductsRequest(category_id=tree["leaf"].id)
    assert list((await products.ListProducts(listing)).products) == []  # cached empty page
    product = await make_product(category_id=tree["leaf"].id)
    assert [p.id for p in (await products.ListProducts(listing)).products] == [product.id]
    await products.UpdateProduct(
        pb.UpdateProductRequest(id=product.id, name="Renamed"), metadata=admin
    )
    assert (await products.ListProducts(listing)).products[0].name == "Renamed"


async def test_cached_reads_are_served_from_redis(stack, products, make_product) -> None:
    """The second read of a product comes from the cache: proven by Redis's own counters."""
    product = await make_product()
    host, port = stack.redis_url.removeprefix("redis://").split("/")[0].split(":")

    def hits() -> int:
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"INFO stats\r\n")
            data = b""
            while b"keyspace_hits" not in data:
                data += s.recv(65536)
        line = next(x for x in data.decode().splitlines() if x.startswith("keyspace_hits"))
        return int(line.split(":")[1])

    await products.GetProduct(pb.GetProductRequest(id=product.id))
    before = hits()
    await products.GetProduct(pb.GetProductRequest(id=product.id))
    assert hits() >= before + 2  # the version key and the cached product


# --- images ---------------------------------------------------------------------------------


async def test_uploaded_image_appears_on_the_product(products, make_product, admin) -> None:
    product = await make_product()
    upload = await products.CreateProductImageUpload(
        pb.CreateProductImageUploadRequest(id=product.id, content_type="image/png"), metadata=admin
    )
    assert upload.image_url.endswith(".png") and product.id in upload.image_url
    async with httpx.AsyncClient(trust_env=False) as client:
        put = await client.put(
            upload.upload_url, content=b"\x89PNG fake bytes", headers={"Content-Type": "image/png"}
        )
        assert put.status_code == 200
        deadline = time.monotonic() + 15
        while True:
            current = await products.GetProduct(pb.GetProductRequest(id=product.id))
            if upload.image_url in current.image_urls:
                break
            assert time.monotonic() < deadline, "image never attached"
            await asyncio.sleep(0.1)
        served = await client.get(upload.image_url)
        assert served.status_code == 200 and served.content == b"\x89PNG fake bytes"


async def test_image_uploads_refuse_non_images_and_unknown_products(products, admin) -> None:
    error = await rpc_error(
        products.CreateProductImageUpload(
            pb.CreateProductImageUploadRequest(id=str(uuid.uuid4()), content_type="text/html"),
            metadata=admin,
        )
    )
    assert set(violations(error)) == {"content_type"}
    missing = await rpc_error(
        products.CreateProductImageUpload(
            pb.CreateProductImageUploadRequest(id=str(uuid.uuid4()), content_type="image/png"),
            metadata=admin,
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_oversized_upload_is_discarded(products, make_product, admin, sql) -> None:
    product = await make_product()
    upload = await products.CreateProductImageUpload(
        pb.CreateProductImageUploadRequest(id=product.id, content_type="image/jpeg"), metadata=admin
    )
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        too_big = b"\xff" * (5 * 1024 * 1024 + 1)
        put = await client.put(
            upload.upload_url, content=too_big, headers={"Content-Type": "image/jpeg"}
        )
        assert put.status_code == 200
        deadline = time.monotonic() + 15
        while sql(
            "select count(*) from catalog.pending_images where image_url = %s", upload.image_url
        )[0][0]:
            assert time.monotonic() < deadline, "pending upload never checked"
            await asyncio.sleep(0.1)
        assert (await client.get(upload.image_url)).status_code == 404  # deleted from S3
    current = await products.GetProduct(pb.GetProductRequest(id=product.id))
    assert upload.image_url not in current.image_urls


# --- migrations -------------------------------------------------------------------------------


def test_search_migration_backfills_products_that_existed_before(stack) -> None:
    """Upgrade a database holding products from before search existed: all become findable."""
    database = f"migration_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = stack.database_url.rsplit("/", 1)[0] + f"/{database}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        command.upgrade(config, "0001")
        dsn = stack.postgres_dsn.rsplit("/", 1)[0] + f"/{database}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO catalog.products (id, sku, name, description, price_cents) "
                "VALUES (gen_random_uuid(), 'OLD-1', 'Vintage Crème Jar', 'glass', 500)"
            )
        command.upgrade(config, "head")
        with psycopg.connect(dsn, autocommit=True) as conn:
            found = conn.execute(
                "SELECT sku FROM catalog.products WHERE search_document @@ "
                "to_tsquery('simple', catalog.unaccent_immutable('creme:*'))"
            ).fetchall()
        assert found == [("OLD-1",)]
    finally:
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        with psycopg.connect(stack.postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def test_models_and_migrations_agree(stack) -> None:
    """`alembic check`: the tables the code declares are exactly what the migrations made."""
    for service in ("auth", "catalog"):
        config = Config()
        config.set_main_option(
            "script_location", str(Path(__file__).resolve().parents[2] / service / "migrations")
        )
        previous = os.environ.get("DATABASE_URL")
        os.environ["DATABASE_URL"] = stack.database_url
        try:
            command.check(config)
        finally:
            if previous is None:
                os.environ.pop("DATABASE_URL", None)
            else:
                os.environ["DATABASE_URL"] = previous


async def test_warm_cache_command_fills_redis(stack, make_product) -> None:
    import redis

    await make_product()
    client = redis.Redis.from_url(stack.redis_url)
    client.incr("catalog:cache:version")  # a fresh generation: nothing cached in it yet
    version = int(client.get("catalog:cache:version"))
    result = subprocess.run(  # noqa: ASYNC221 (the command under test, run to completion)
        [sys.executable, "-m", "catalog_service", "warm-cache", "--products", "5"],
        env={**os.environ, **stack.service_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "cached" in result.stdout
    cached = client.keys(f"catalog:cache:{version}:*")
    # catalog:cache:<v>:categories:…, …:<v>:product:<id>:<pv>, …:<v>:<in-stock v or ->:list:…
    kinds = {part for key in cached for part in key.decode().split(":")[3:5]}
    assert {"categories", "list", "product"} <= kinds
