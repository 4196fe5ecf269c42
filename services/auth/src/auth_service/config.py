"""Auth service settings (environment variables; see the README's configuration table)."""

from __future__ import annotations

from ecom_runtime.config import ServiceSettings


class AuthSettings(ServiceSettings):
    grpc_port: int = 50051
    # PEM of the Ed25519 signing key; or a file holding it, created on first start if missing.
    auth_jwt_private_key: str = ""
    auth_jwt_private_key_file: str = ".local/auth/jwt_ed25519.pem"
    # More keys whose public halves the JWKS publishes (rotation: the next, then the previous
    # key), PEM blocks in one file; a missing file is none.
    auth_jwt_published_keys_file: str = ""
    auth_access_token_ttl_seconds: int = 15 * 60
    auth_refresh_token_ttl_seconds: int = 7 * 24 * 3600
    auth_reset_token_ttl_seconds: int = 3600
    # bcrypt work factor: 10 costs ~50 ms a hash here. Tests lower it to 4.
    auth_bcrypt_cost: int = 10
    # When both are set, `serve` makes sure this admin account exists (first admin bootstrap).
    auth_admin_email: str = ""
    auth_admin_password: str = ""
