"""Why the notifications service refuses a request: stable `google.rpc.ErrorInfo` reasons."""

DELIVERY_FAILED = "DELIVERY_FAILED"  # a replayed dead letter failed again; it is kept
