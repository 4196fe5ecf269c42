"""Dead letters: events whose notification failed on every attempt, kept (and announced) until
an admin replays them. A replay runs the event through its job's handler exactly as a delivery
would, with the same inbox claim, so an email already sent is not sent again."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from ecom_runtime.db import Database
from ecom_runtime.errors import FailedPrecondition, NotFound
from ecom_runtime.events import FailedEvent
from ecom_runtime.paging import Page, created_keyset_page, decode_created_keyset, page_size
from ecom_runtime.server import Consumer
from ecommerce.events.v1 import events_pb2
from sqlalchemy import Row, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from notifications_service import errors
from notifications_service.store import dead_letters

log = logging.getLogger("notifications.dead_letters")


def _summary(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


class DeadLetters:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def keep(self, failed: FailedEvent) -> None:
        """The consumers' dead-letter keeper (ecom_runtime.events)."""
        async with self._db.begin() as tx:
            kept = (
                await tx.conn.execute(
                    pg_insert(dead_letters)
                    .values(
                        id=uuid.uuid4(),
                        job=failed.consumer,
                        subject=failed.subject,
                        event_id=failed.event_id,
                        payload=failed.payload,
                        headers=failed.headers,
                        attempts=failed.attempts,
                        error=failed.error,
                    )
                    .on_conflict_do_nothing()  # kept already; JetStream just did not hear back
                    .returning(dead_letters.c.id)
                )
            ).scalar_one_or_none()
            if kept is not None:
                tx.add(
                    events_pb2.NotificationDeadLettered(
                        dead_letter_id=str(kept),
                        job=failed.consumer,
                        subject=failed.subject,
                        failed_event_id=failed.event_id,
                        error=failed.error,
                    )
                )

    async def list(self, size: int, token: str) -> Page:
        limit = page_size(size)
        after = decode_created_keyset(token)
        dl = dead_letters
        query = select(dl).order_by(dl.c.created_at.desc(), dl.c.id.desc())
        if after is not None:
            query = query.where(tuple_(dl.c.created_at, dl.c.id) < tuple_(*after))
        async with self._db.connect() as conn:
            rows = list((await conn.execute(query.limit(limit + 1))).all())
            total = (await conn.execute(select(func.count()).select_from(dl))).scalar_one()
        return created_keyset_page(rows, limit, total)

    async def counts(self) -> dict[str, int]:
        """Dead letters per job."""
        query = select(dead_letters.c.job, func.count()).group_by(dead_letters.c.job)
        async with self._db.connect() as conn:
            return {job: count for job, count in (await conn.execute(query)).all()}

    async def replay(self, letter_id: uuid.UUID, jobs: Mapping[str, Consumer]) -> None:
        """Runs the event through its job now; on success the dead letter is gone, on failure
        it stays with one more attempt and the new error (FailedPrecondition)."""
        letter = await self._get(letter_id)
        job = jobs.get(letter.job)
        if job is None:
            raise FailedPrecondition(
                f"job {letter.job} no longer exists", reason=errors.DELIVERY_FAILED
            )
        still_there = False
        try:
            event = job.message_type.FromString(letter.payload)
            async with self._db.begin() as tx:
                taken = await tx.conn.execute(
                    delete(dead_letters).where(dead_letters.c.id == letter_id)
                )
                # Another replay of it may have just succeeded: then there is nothing to do.
                still_there = taken.rowcount > 0
                if still_there and await tx.claim_once(job.durable, letter.event_id):
                    await job.handler(tx, event)
        except Exception as error:
            await self._failed_again(letter_id, error)
            log.warning("replay failed", extra={"dead_letter": str(letter_id), "job": job.durable})
            raise FailedPrecondition(
                f"the notification failed again: {_summary(error)}",
                reason=errors.DELIVERY_FAILED,
            ) from None
        if not still_there:
            raise NotFound("dead letter not found")

    async def _get(self, letter_id: uuid.UUID) -> Row[Any]:
        async with self._db.connect() as conn:
            letter = (
                await conn.execute(select(dead_letters).where(dead_letters.c.id == letter_id))
            ).first()
        if letter is None:
            raise NotFound("dead letter not found")
        return letter

    async def _failed_again(self, letter_id: uuid.UUID, error: Exception) -> None:
        async with self._db.begin() as tx:
            await tx.conn.execute(
                update(dead_letters)
                .where(dead_letters.c.id == letter_id)
                .values(
                    attempts=dead_letters.c.attempts + 1,
                    error=_summary(error),
                    updated_at=func.now(),
                )
            )
