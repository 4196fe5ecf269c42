"""Catalog service settings (environment variables; see the README's configuration table)."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings


class CatalogSettings(ServiceSettings):
    grpc_port: int = 50052
    # Product reads and list pages are cached this long at most (writes invalidate sooner).
    catalog_cache_ttl_seconds: int = 300
    # "postgres" (full-text search in the catalog's own tables) or "elasticsearch".
    catalog_search_backend: str = "postgres"
    elasticsearch_url: str = ""
    elasticsearch_index: str = "products"
    # How often expired stock reservations are released.
    catalog_reservation_sweep_seconds: float = 5.0
    # Product images: uploaded by presigned PUT to this bucket, served from catalog_image_base_url.
    s3_endpoint_url: str = ""  # empty: AWS itself
    s3_bucket: str = "product-images"
    s3_region: str = "us-east-1"
    # Public base URL of the bucket's objects; empty means "<s3_endpoint_url>/<s3_bucket>".
    catalog_image_base_url: str = ""
    catalog_image_max_bytes: int = 5 * 1024 * 1024
    # How often pending uploads are checked and, once in S3, added to the product.
    catalog_image_check_seconds: float = 1.0
