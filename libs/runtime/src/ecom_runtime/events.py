"""Transactional outbox, its relay to NATS JetStream, and idempotent consumers (inbox).

A service writes an event into its own `outbox` table in the same transaction as the state
change (`UnitOfWork.add`, ecom_runtime.db); the relay publishes it with `Nats-Msg-Id` = event
id (JetStream drops duplicates within its window) and deletes the row. A consumer claims each
event id in `inbox` (`UnitOfWork.claim_once`) in the same transaction as its effect, so a
redelivery changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

import nats
from google.protobuf.message import Message
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from ecom_runtime.db import Database, UnitOfWork
from ecom_runtime.telemetry import current_traceparent, tracing_exported

log = logging.getLogger("ecom.events")
tracer = trace.get_tracer("ecom.events")

STREAM = "ECOM"
SUBJECTS = ["ecom.>"]
PUBLISH_TIMEOUT = 2.0  # seconds JetStream gets to acknowledge a publish

E = TypeVar("E", bound=Message)


def add_event_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The outbox and inbox tables, in the service's own schema.

    The inbox holds claimed `(scope, key)` pairs (`UnitOfWork.claim_once`): a consumer's
    processed event ids, a provider's webhook event ids, Idempotency-Keys.
    """
    outbox = Table(
        "outbox",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("subject", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_outbox_created_at", "created_at"),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("scope", Text, primary_key=True),
        Column("key", Text, primary_key=True),
        Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return outbox, inbox


async def _log_nats_error(error: Exception) -> None:
    log.warning("NATS: %s", error or type(error).__name__)


async def connect_jetstream(url: str) -> tuple[nats.NATS, JetStreamContext]:
    nc = await nats.connect(
        url,
        name="ecom",
        connect_timeout=2,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=_log_nats_error,
    )
    js = nc.jetstream()
    config = StreamConfig(
        name=STREAM,
        subjects=SUBJECTS,
        duplicate_window=120.0,  # seconds in which a re-published Nats-Msg-Id is dropped
        max_age=7 * 24 * 3600.0,
    )
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)
    return nc, js


class OutboxRelay:
    """Publishes the outbox. With telemetry exported it also reports its backlog (events
    committed, not yet published) as `outbox.backlog` and `outbox.oldest_age`: a backlog that
    grows means NATS is unreachable or the relay is stuck, and every consumer waits."""

    BACKLOG_EVERY_SECONDS = 10.0

    def __init__(self, db: Database, poll_seconds: float = 0.2) -> None:
        assert db.outbox is not None
        self._engine = db.engine
        self._outbox = db.outbox
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._backlog: tuple[int, float] | None = None  # events, age of the oldest in seconds
        db.when_events_committed(self.wake)

    def wake(self) -> None:
        """Hint that an event was just committed, to publish it without waiting for a poll."""
        self._wake.set()

    async def run(self, js: JetStreamContext) -> None:
        measuring = asyncio.create_task(self._measure_backlog()) if tracing_exported() else None
        try:
            while True:
                if await self.publish_batch(js) == 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._poll)
                    except TimeoutError:
                        pass
                    self._wake.clear()
        finally:
            if measuring is not None:
                measuring.cancel()

    async def publish_batch(self, js: JetStreamContext, limit: int = 100) -> int:
        o = self._outbox
        async with self._engine.begin() as conn:
            # SKIP LOCKED: several processes of a service relay in parallel without doubling up.
            rows = (
                await conn.execute(
                    select(o.c.id, o.c.subject, o.c.payload, o.c.headers)
                    .order_by(o.c.created_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                subject = row.subject
                # A child of the span that wrote the event; the consumers' spans are its children.
                with tracer.start_as_current_span(
                    f"publish {subject}",
                    context=propagate.extract(row.headers),
                    kind=trace.SpanKind.PRODUCER,
                    attributes={"messaging.system": "nats", "messaging.destination.name": subject},
                ):
                    headers = {**row.headers, **current_traceparent(), "Nats-Msg-Id": str(row.id)}
                    await js.publish(subject, row.payload, headers=headers, timeout=PUBLISH_TIMEOUT)
            if rows:
                await conn.execute(delete(o).where(o.c.id.in_([r.id for r in rows])))
        return len(rows)

    async def _measure_backlog(self) -> None:
        o = self._outbox
        meter = metrics.get_meter("ecom")
        meter.create_observable_gauge(
            "outbox.backlog",
            [self._observe_count],
            unit="{event}",
            description="Events committed and not yet published to NATS",
        )
        meter.create_observable_gauge(
            "outbox.oldest_age",
            [self._observe_age],
            unit="s",
            description="Age of the oldest event not yet published",
        )
        query = select(func.count(), func.min(o.c.created_at), func.now())
        while True:
            try:
                async with self._engine.connect() as conn:
                    count, oldest, now = (await conn.execute(query)).one()
                self._backlog = (count, (now - oldest).total_seconds() if oldest else 0.0)
            except Exception:  # PostgreSQL away: report nothing rather than a stale figure
                self._backlog = None
            await asyncio.sleep(self.BACKLOG_EVERY_SECONDS)

    def _observe_count(self, _: CallbackOptions) -> list[Observation]:
        return [] if self._backlog is None else [Observation(self._backlog[0])]

    def _observe_age(self, _: CallbackOptions) -> list[Observation]:
        return [] if self._backlog is None else [Observation(self._backlog[1])]


Handler = Callable[[UnitOfWork, E], Awaitable[None]]


@dataclass(frozen=True)
class FailedEvent:
    """An event whose last allowed delivery failed too, as a dead-letter keeper gets it."""

    consumer: str
    subject: str
    event_id: str
    payload: bytes
    headers: dict[str, str]
    attempts: int
    error: str


DeadLetterKeeper = Callable[[FailedEvent], Awaitable[None]]

# Claims older than this are forgotten: JetStream cannot redeliver an event older than the
# stream's max_age (7 days), so remembering it longer protects nothing.
INBOX_KEEP_SECONDS = 8 * 24 * 3600


async def prune_inbox(db: Database, keep_seconds: float = INBOX_KEEP_SECONDS) -> int:
    """Forgets claims older than `keep_seconds`; how many."""
    inbox = db.inbox
    assert inbox is not None
    async with db.begin() as tx:
        result = await tx.conn.execute(
            delete(inbox).where(inbox.c.claimed_at < func.now() - timedelta(seconds=keep_seconds))
        )
    return int(result.rowcount)


class EventConsumer(Generic[E]):
    """A durable JetStream pull consumer that applies each event at most once."""

    def __init__(
        self,
        *,
        db: Database,
        js: JetStreamContext,
        durable: str,
        subject: str,
        message_type: type[E],
        handler: Handler[E],
        max_deliver: int = 10,
        ack_wait_seconds: float = 30.0,
        dead_letter: DeadLetterKeeper | None = None,
    ) -> None:
        self._db = db
        self._js = js
        self.durable = durable
        self.subject = subject
        self._type = message_type
        self._handler = handler
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait_seconds
        self._dead_letter = dead_letter

    async def run(self) -> None:
        # With a dead-letter keeper we count attempts ourselves and JetStream never gives up:
        # an event it dropped after max_deliver would be lost if keeping it failed.
        max_deliver = -1 if self._dead_letter else self._max_deliver
        subscription = await self._js.pull_subscribe(
            self.subject,
            durable=self.durable,
            stream=STREAM,
            config=ConsumerConfig(max_deliver=max_deliver, ack_wait=self._ack_wait),
        )
        while True:
            try:
                messages = await subscription.fetch(10, timeout=1.0)
            except TimeoutError:
                continue
            for message in messages:
                await self._handle(message)

    async def _handle(self, message: Any) -> None:
        try:
            await self.apply(message)
            await message.ack()
        except Exception as error:
            attempt = message.metadata.num_delivered
            log.exception(
                "event handler failed",
                extra={"consumer": self.durable, "subject": message.subject, "attempt": attempt},
            )
            if self._dead_letter is not None and attempt >= self._max_deliver:
                if await self._keep_dead_letter(message, attempt, error):
                    await message.ack()
                    return
            await message.nak(delay=min(30.0, 0.5 * 2**attempt))

    async def _keep_dead_letter(self, message: Any, attempt: int, error: Exception) -> bool:
        assert self._dead_letter is not None
        headers = dict(message.headers or {})
        failed = FailedEvent(
            consumer=self.durable,
            subject=message.subject,
            event_id=self._event_id(message),
            payload=message.data,
            headers=headers,
            attempts=attempt,
            error=f"{type(error).__name__}: {error}"[:1000],
        )
        try:
            await self._dead_letter(failed)
        except Exception:
            log.exception("keeping a dead letter failed", extra={"consumer": self.durable})
            return False
        log.warning(
            "event dead-lettered",
            extra={"consumer": self.durable, "subject": message.subject, "attempt": attempt},
        )
        return True

    @staticmethod
    def _event_id(message: Any) -> str:
        headers = message.headers or {}
        return str(headers.get("Nats-Msg-Id") or f"seq:{message.metadata.sequence.stream}")

    async def apply(self, message: Any) -> bool:
        """Runs the handler unless this consumer already applied the event; True if it ran."""
        event_id = self._event_id(message)
        context = propagate.extract(message.headers or {})
        with tracer.start_as_current_span(
            f"consume {self.subject}",
            context=context,
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.consumer.group.name": self.durable},
        ):
            event = self._type.FromString(message.data)
            async with self._db.begin() as tx:
                if not await tx.claim_once(self.durable, event_id):
                    return False
                await self._handler(tx, event)
            return True
