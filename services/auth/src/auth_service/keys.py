"""The Ed25519 key that signs access tokens, and the JWKS that publishes its public half."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def load_or_create_key(pem: str, path: str) -> Ed25519PrivateKey:
    """The key from `pem`, else from `path`, creating that file (mode 600) on first start.

    Several processes may start at once: the file appears atomically (link fails if present).
    """
    if not pem:
        file = Path(path)
        if not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
            fresh = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd, tmp = tempfile.mkstemp(dir=file.parent)
            with os.fdopen(fd, "wb") as out:
                out.write(fresh)
            try:
                os.link(tmp, file)
            except FileExistsError:
                pass  # another process won the race; use its key
            finally:
                os.unlink(tmp)
        pem = file.read_text()
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit("AUTH_JWT_PRIVATE_KEY must be an Ed25519 private key (PEM, PKCS#8)")
    return key


def load_published_keys(path: str) -> tuple[Ed25519PublicKey, ...]:
    """The keys in `path` (PEM blocks, public or private; no file: none) whose public halves
    the JWKS publishes beside the signing key: the next key before a rotation, so every verifier
    knows it before the first token it signs; the previous one after, until the tokens it signed
    expire (docs/runbook.md)."""
    file = Path(path) if path else None
    if file is None or not file.exists():
        return ()
    keys = []
    for match in _PEM_BLOCK.finditer(file.read_text()):
        pem = match.group(0).encode()
        key: object
        if match.group(1) == "PUBLIC KEY":
            key = serialization.load_pem_public_key(pem)
        else:
            key = serialization.load_pem_private_key(pem, password=None).public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise SystemExit(f"{path}: every key must be Ed25519")
        keys.append(key)
    return tuple(keys)


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


def derive_secret(key: Ed25519PrivateKey, purpose: str) -> bytes:
    """A 256-bit secret for `purpose`, derived from the signing key (HKDF): one secret to
    provision and rotate, and nothing derived from it reveals the key or another purpose's."""
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return HKDF(hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(raw)


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    # RFC 7638 thumbprint: a kid that changes whenever the key does.
    thumbprint = hashlib.sha256(json.dumps(jwk, separators=(",", ":")).encode()).digest()
    return {**jwk, "kid": _b64url(thumbprint), "alg": "EdDSA", "use": "sig"}


@dataclass(frozen=True)
class TokenSigner:
    key: Ed25519PrivateKey
    issuer: str
    audience: str
    ttl_seconds: int

    published: tuple[Ed25519PublicKey, ...] = ()

    @property
    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.key.public_key())

    @property
    def jwks(self) -> list[dict[str, str]]:
        """The signing key's public half first, then the other published keys."""
        return [self.public_jwk, *(public_jwk(key) for key in self.published)]

    def issue(self, user_id: uuid.UUID, role: str) -> str:
        now = time.time()
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "role": role,
            # Milliseconds (RFC 7519 allows fractions): a revocation must tell a token issued
            # just before it from one issued just after, in the same second.
            "iat": round(now, 3),
            "exp": int(now) + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})

    @property
    def kid(self) -> str:
        return self.public_jwk["kid"]
