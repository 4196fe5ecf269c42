"""Why the payments service refuses a request: stable `google.rpc.ErrorInfo` reasons."""

NOT_PAID = "NOT_PAID"  # a refund of an order without a successful payment
REFUND_EXCEEDS_PAYMENT = "REFUND_EXCEEDS_PAYMENT"  # more than is left to refund
PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"  # cancelling a paid intent (refund it instead)
PAYMENT_CANCELED = "PAYMENT_CANCELED"  # confirming a cancelled intent
PAYMENT_PROCESSING = "PAYMENT_PROCESSING"  # Stripe is still settling it; try again later
PROVIDER_REFUSED = "PROVIDER_REFUSED"  # Stripe refused the request for another reason
