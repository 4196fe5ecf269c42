"""inbox rows are claims: (scope, key, claimed_at)

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from ecom_runtime.migrations import claims_to_inbox, inbox_to_claims

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inbox_to_claims("auth")


def downgrade() -> None:
    claims_to_inbox("auth")
