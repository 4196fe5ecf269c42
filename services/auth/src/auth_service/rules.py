"""Rules every part of the auth service shares: the one form of an email address, names, and
how secrets are kept at rest."""

from __future__ import annotations

import hashlib
import unicodedata

from ecom_runtime.validation import Violations
from email_validator import EmailNotValidError, validate_email


def canonical_email(email: str) -> str | None:
    """The single form an address is stored in and looked up by (register, login, forgotten
    password, admin edits alike): validated, NFC, lower-cased; None if it is no address."""
    try:
        normalized = validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None
    return unicodedata.normalize("NFC", normalized.lower())


def check_email(field: str, email: str, violations: Violations) -> str:
    if not email.strip():
        violations.add(field, "is required")
        return ""
    canonical = canonical_email(email)
    if canonical is None:
        violations.add(field, "is not a valid email address")
        return ""
    return canonical


def check_name(field: str, name: str, violations: Violations) -> str:
    violations.check_length(field, name, 1, 100)
    return name.strip()


def digest(secret: str) -> bytes:
    # Refresh, reset and API keys are 256-bit random values: a fast hash is enough at rest.
    return hashlib.sha256(secret.encode()).digest()
