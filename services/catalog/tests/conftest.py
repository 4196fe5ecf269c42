"""Catalog test fixtures: stubs on the stack's catalog service, signed-in callers, builders."""

from __future__ import annotations

import grpc
import pytest
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.catalog.v1 import catalog_pb2 as pb
from ecommerce.catalog.v1 import catalog_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, internal_channel, tag, unique_email


@pytest.fixture(scope="session")
async def catalog_channel(stack):
    async with grpc.aio.insecure_channel(stack.grpc_addrs["catalog"]) as channel:
        yield channel


@pytest.fixture
def products(catalog_channel) -> catalog_pb2_grpc.ProductServiceStub:
    return catalog_pb2_grpc.ProductServiceStub(catalog_channel)


@pytest.fixture
def categories(catalog_channel) -> catalog_pb2_grpc.CategoryServiceStub:
    return catalog_pb2_grpc.CategoryServiceStub(catalog_channel)


@pytest.fixture(scope="session")
async def internal(stack):
    """CatalogInternalService as other services call it: with the service credential."""
    async with internal_channel(stack, "catalog") as channel:
        yield catalog_pb2_grpc.CatalogInternalServiceStub(channel)


@pytest.fixture(scope="session")
async def admin(auth_channel) -> tuple[tuple[str, str], ...]:
    """Metadata of a signed-in admin."""
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    session = await auth.Login(auth_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    return (("authorization", f"Bearer {session.access_token}"),)


@pytest.fixture(scope="session")
async def customer(auth_channel) -> tuple[tuple[str, str], ...]:
    """Metadata of a signed-in customer."""
    auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    session = await auth.Register(
        auth_pb2.RegisterRequest(email=unique_email("shopper"), password="long enough pw", name="S")
    )
    return (("authorization", f"Bearer {session.access_token}"),)


@pytest.fixture
def make_tree(categories, admin):
    """Builds root > mid > leaf plus a sibling root 'other', with unique slugs."""

    async def build() -> dict[str, pb.Category]:
        t = tag()

        async def create(name: str, slug: str, parent: pb.Category | None = None) -> pb.Category:
            request = pb.CreateCategoryRequest(
                name=name, slug=f"{slug}-{t}", parent_id=parent.id if parent else ""
            )
            return await categories.CreateCategory(request, metadata=admin)

        root = await create("Outdoor", "outdoor")
        mid = await create("Camping", "camping", root)
        leaf = await create("Tents", "tents", mid)
        other = await create("Kitchen", "kitchen")
        return {"root": root, "mid": mid, "leaf": leaf, "other": other}

    return build


@pytest.fixture
def make_product(products, admin):
    """Creates a product as admin; any CreateProductRequest field can be given."""

    async def create(**fields) -> pb.Product:
        values = {"sku": f"SKU-{tag()}", "name": "Thing", "price_cents": 1000, "stock": 10}
        return await products.CreateProduct(
            pb.CreateProductRequest(**(values | fields)), metadata=admin
        )

    return create
