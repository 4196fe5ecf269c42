"""Orders service settings (environment variables; see the README's configuration table)."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings


class OrdersSettings(ServiceSettings):
    grpc_port: int = 50054
    catalog_grpc_addr: str = "127.0.0.1:50052"
    cart_grpc_addr: str = "127.0.0.1:50053"
    payments_grpc_addr: str = "127.0.0.1:50055"
    # Payments waits on Stripe (up to its own 8 s timeout): calls to it get longer than the
    # 3 s other internal calls get, still below the edge's 15 s route timeout.
    orders_payments_timeout_seconds: float = 10.0
    # How long an unpaid order holds its stock; then it is cancelled and the stock returns.
    orders_reservation_seconds: int = 900
    # How often unpaid orders past their reservation are looked for.
    orders_expiry_sweep_seconds: float = 10.0
    # A checkout left unfinished this long by a process that died is finished or undone.
    orders_checkout_recovery_seconds: float = 30.0
    # At most this many checkouts run at once per process; more wait their turn (each holds a
    # database connection while it runs, so this stays below the pool size).
    orders_checkout_concurrency: int = 8
    # Tax per destination country (ISO 3166-1 alpha-2) in basis points of the subtotal
    # (1900 = 19 %), as JSON; countries not listed pay `orders_tax_default_bps`.
    orders_tax_rates: dict[str, int] = {
        "DE": 1900,
        "ES": 2100,
        "FR": 2000,
        "GB": 2000,
        "IT": 2200,
        "NL": 2100,
    }
    orders_tax_default_bps: int = 0
    # Flat shipping per order, free from this subtotal on.
    orders_shipping_cents: int = 599
    orders_free_shipping_from_cents: int = 5000
    # The store's currency: what analytics report revenue in.
    orders_currency: str = "USD"
    # The daily sales report's CSVs go to this bucket (created when missing, as on the local
    # stack); S3 as for the catalog's images, credentials from the standard AWS_* variables.
    orders_reports_bucket: str = "reports"
    s3_endpoint_url: str = ""  # empty: AWS itself
    s3_region: str = "us-east-1"
