from ecom_runtime.migrations import run_migrations
from notifications_service.store import SCHEMA, metadata

run_migrations(metadata, SCHEMA)
