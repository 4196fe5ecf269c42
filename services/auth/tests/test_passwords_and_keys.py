"""Unit tests: password policy and hashing, signing keys. No server needed."""

from __future__ import annotations

import os
import threading
import uuid

import bcrypt
import jwt
import pytest
from auth_service.keys import TokenSigner, load_or_create_key
from auth_service.passwords import PasswordHasher, password_problem


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", "is required"),
        ("        ", "is required"),
        ("1234567", "must be at least 8 characters"),
        ("ü" * 37, "must be at most 72 bytes"),  # 37 characters, 74 bytes
        ("12345678", None),
        ("ü" * 36, None),
    ],
)
def test_password_policy(password: str, problem: str | None) -> None:
    assert password_problem(password) == problem


async def test_hash_verifies_and_unknown_user_costs_a_real_check() -> None:
    hasher = PasswordHasher(cost=5)
    hashed = await hasher.hash("a good password")
    assert hashed.startswith("$2b$05$")
    assert await hasher.verify("a good password", hashed)
    assert not await hasher.verify("a bad password", hashed)
    # No account: compared against a decoy of the same cost, and never a match.
    assert not await hasher.verify("decoy-password", None)
    assert hasher._decoy.startswith(b"$2b$05$")
    assert bcrypt.checkpw(b"decoy-password", hasher._decoy)


def test_key_file_is_created_once_and_shared(tmp_path) -> None:
    path = tmp_path / "keys" / "jwt.pem"
    keys = []
    threads = [
        threading.Thread(target=lambda: keys.append(load_or_create_key("", str(path))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    raw = {k.private_bytes_raw() for k in keys}
    assert len(raw) == 1  # every process signs with the same key
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_tokens_carry_kid_role_and_expiry(tmp_path) -> None:
    signer = TokenSigner(
        key=load_or_create_key("", str(tmp_path / "k.pem")),
        issuer="ecommerce-auth",
        audience="ecommerce",
        ttl_seconds=900,
    )
    user_id = uuid.uuid4()
    token = signer.issue(user_id, "admin")
    assert jwt.get_unverified_header(token)["kid"] == signer.public_jwk["kid"]
    public = jwt.PyJWK(signer.public_jwk).key
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="ecommerce")
    assert (claims["sub"], claims["role"]) == (str(user_id), "admin")
    assert 899 < claims["exp"] - claims["iat"] <= 900  # iat in milliseconds, exp in seconds


def test_a_non_ed25519_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(SystemExit, match="Ed25519"):
        load_or_create_key(pem, "unused")
