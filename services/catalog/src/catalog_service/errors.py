"""Why the catalog refuses a request: stable `google.rpc.ErrorInfo` reasons (and
`PreconditionFailure` violation types) that clients and other services switch on."""

OUT_OF_STOCK = "OUT_OF_STOCK"  # fewer units available than asked for
PRODUCT_UNAVAILABLE = "PRODUCT_UNAVAILABLE"  # unknown, deleted or inactive: 0 available
BELOW_RESERVED = "BELOW_RESERVED"  # on_hand set below the units reserved
SKU_TAKEN = "SKU_TAKEN"
SLUG_TAKEN = "SLUG_TAKEN"
CATEGORY_CYCLE = "CATEGORY_CYCLE"


def reservation_state(state: str) -> str:
    """RESERVATION_RELEASED, RESERVATION_EXPIRED...: a reservation that can no longer commit."""
    return f"RESERVATION_{state.upper()}"
