"""Why the auth service refuses a request: stable `google.rpc.ErrorInfo` reasons clients may
switch on (the message is for people and may change)."""

EMAIL_TAKEN = "EMAIL_TAKEN"
INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID"  # noqa: S105 (a reason, not a secret)
REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"  # noqa: S105 (the whole sign-in was revoked)
RESET_TOKEN_INVALID = "RESET_TOKEN_INVALID"  # noqa: S105
LAST_ADMIN = "LAST_ADMIN"
API_KEY_CANNOT_MANAGE_KEYS = "API_KEY_CANNOT_MANAGE_KEYS"
ACCOUNT_GONE = "ACCOUNT_GONE"
