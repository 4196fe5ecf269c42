"""Why the cart service refuses a request: stable `google.rpc.ErrorInfo` reasons."""

OUT_OF_STOCK = "OUT_OF_STOCK"  # more than the catalog has available
PRODUCT_UNAVAILABLE = "PRODUCT_UNAVAILABLE"  # unknown, deleted or inactive
CURRENCY_MISMATCH = "CURRENCY_MISMATCH"  # one currency per cart
CART_FULL = "CART_FULL"  # at most 100 different products
CART_TOKEN_INVALID = "CART_TOKEN_INVALID"  # noqa: S105 (a reason, not a secret)
