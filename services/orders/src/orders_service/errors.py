"""Why the orders service refuses a request: stable `google.rpc.ErrorInfo` reasons."""

CART_EMPTY = "CART_EMPTY"
PRODUCT_UNAVAILABLE = "PRODUCT_UNAVAILABLE"  # in the cart, no longer for sale
OUT_OF_STOCK = "OUT_OF_STOCK"  # from the catalog's reservation, passed on as it is
CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
CARD_DECLINED = "CARD_DECLINED"  # ErrorInfo metadata `decline_code` says why
PAYMENT_REQUIRES_ACTION = "PAYMENT_REQUIRES_ACTION"  # finish with Stripe.js (3-D Secure)
ORDER_NOT_PAYABLE = "ORDER_NOT_PAYABLE"  # not awaiting payment
RESERVATION_EXPIRED = "RESERVATION_EXPIRED"  # too late to pay; the order is being cancelled
ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"  # same key, another request
IDEMPOTENCY_KEY_IN_USE = "IDEMPOTENCY_KEY_IN_USE"  # the first request is still running
