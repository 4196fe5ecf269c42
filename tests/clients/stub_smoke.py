"""Run by test_generated_clients.py with the python of a fresh venv holding only the
`ecom-protos` wheel and its dependencies: calls the stack through Envoy over native gRPC with
the typed stubs, as docs/clients.md shows, and prints what it saw as JSON.

    python stub_smoke.py EDGE_HOST:PORT PRODUCT_ID EMAIL
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ecommerce
import grpc
from ecommerce.auth.v1 import auth_pb2, auth_pb2_grpc
from ecommerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc


def main(edge: str, product_id: str, email: str) -> None:
    package = Path(ecommerce.__file__).parent
    with grpc.insecure_channel(edge) as channel:
        products = catalog_pb2_grpc.ProductServiceStub(channel)
        page = products.ListProducts(catalog_pb2.ListProductsRequest(page_size=5), timeout=10)
        product = products.GetProduct(catalog_pb2.GetProductRequest(id=product_id), timeout=10)
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        session = auth.Register(
            auth_pb2.RegisterRequest(email=email, password="long enough pw", name="Py"),
            timeout=10,
        )
        me = auth.GetMe(
            auth_pb2.GetMeRequest(),
            metadata=[("authorization", f"Bearer {session.access_token}")],
            timeout=10,
        )
        try:
            auth_pb2_grpc.AuthInternalServiceStub(channel).AuthenticateApiKey(
                auth_pb2.AuthenticateApiKeyRequest(), timeout=10
            )
            internal = "reachable"
        except grpc.RpcError as error:
            assert isinstance(error, grpc.Call)  # gRPC's errors are both
            internal = error.code().name
    print(
        json.dumps(
            {
                "installed_at": str(package),
                "typed": (package / "py.typed").exists(),
                "stubs": sorted(p.name for p in package.glob("*/v1/*.pyi")),
                "listed": len(page.products),
                "product": {"sku": product.sku, "price_cents": product.price_cents},
                "me": me.user.email,
                "role": auth_pb2.Role.Name(me.user.role),
                "internal": internal,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
