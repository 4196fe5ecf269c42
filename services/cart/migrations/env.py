from cart_service.store import SCHEMA, metadata
from ecom_runtime.migrations import run_migrations

run_migrations(metadata, SCHEMA)
