"""A self-signed certificate for the edge's local TLS listener (never for production).

    python -m ecom_stack.selfsigned DIR   # writes DIR/edge-cert.pem and DIR/edge-key.pem

Then EDGE_TLS_CERT_FILE=DIR/edge-cert.pem EDGE_TLS_KEY_FILE=DIR/edge-key.pem (and optionally
EDGE_TLS_PORT, default 8443); clients trust edge-cert.pem as their CA. `STACK_TLS=1` does this
for the local stack.
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_self_signed(directory: Path, days: int = 30) -> tuple[Path, Path]:
    """A CA-flagged P-256 cert for localhost and 127.0.0.1: it is its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "edge-cert.pem", directory / "edge-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


if __name__ == "__main__":
    for path in write_self_signed(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(path)
