"""Database access: one async engine per service, tables in the service's own schema, and the
unit of work every write goes through.

A write is one `UnitOfWork` (`async with db.begin() as tx`): `tx.conn` runs SQL, `tx.add(event)`
puts an event in the outbox in the same transaction, `tx.claim_once(scope, key)` makes an
effect happen once per key, and `tx.on_commit(fn)` runs `fn` only after the commit (cache
retirement, wake-ups). Nothing registered runs if the transaction rolls back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import MetaData, Table, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ecom_runtime.config import ServiceSettings
from ecom_runtime.telemetry import current_traceparent

log = logging.getLogger("ecom.db")

# Deterministic constraint names, so Alembic autogenerate and hand-written migrations agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# What PostgreSQL being unreachable, overloaded or too slow looks like from here: the
# interceptor answers these with UNAVAILABLE (HTTP 503), never INTERNAL.
OUTAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    connect_timeout: float = 3.0,
    pool_timeout: float = 3.0,
    statement_timeout: float = 5.0,
) -> AsyncEngine:
    """Every wait is bounded, and the sum stays below the edge's route timeout: connecting
    (`connect_timeout`), waiting for a pooled connection (`pool_timeout`) and one statement
    (`statement_timeout`, enforced by PostgreSQL itself)."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,  # survive a Postgres restart without failing the first request
        connect_args={
            "connect_timeout": max(1, round(connect_timeout)),
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
        },
        # Never let SQL (and its parameters, which may hold secrets) into logs.
        echo=False,
        hide_parameters=True,
    )


AfterCommit = Callable[[], Awaitable[None]]


class UnitOfWork:
    """One write transaction (see the module docstring). Made by `Database.begin`."""

    def __init__(self, db: Database, conn: AsyncConnection) -> None:
        self.db = db
        self.conn = conn
        self._events: list[dict[str, Any]] = []
        self._after_commit: list[AfterCommit] = []

    def add(self, event: Message) -> str:
        """Publish `event` if (and only if) this transaction commits; returns its id.

        Its subject comes from the service's `events.py`. Sets `event_id` and `occurred_at`
        on the message when it has them and they are empty.
        """
        subject = self.db.subject_of(event)
        fields = event.DESCRIPTOR.fields_by_name
        event_id = getattr(event, "event_id", "") if "event_id" in fields else ""
        event_id = event_id or str(uuid.uuid4())
        if "event_id" in fields:
            setattr(event, "event_id", event_id)  # noqa: B010
        if "occurred_at" in fields and not event.HasField("occurred_at"):
            getattr(event, "occurred_at").GetCurrentTime()  # noqa: B009
        self._events.append(
            {
                "id": uuid.UUID(event_id),
                "subject": subject,
                "payload": event.SerializeToString(),
                "headers": current_traceparent(),  # the trace travels with the event
            }
        )
        return event_id

    async def claim_once(self, scope: str, key: str) -> bool:
        """True the first time `(scope, key)` is claimed; False ever after (until pruned).

        The claim is part of this transaction: if it rolls back, the key is free again. Use it
        for consumed event ids, provider webhook ids and Idempotency-Keys alike.
        """
        inbox = self.db.inbox
        if inbox is None:
            raise RuntimeError("this service has no inbox table")
        claimed = await self.conn.execute(
            pg_insert(inbox)
            .values(scope=scope, key=key)
            .on_conflict_do_nothing()
            .returning(text("1"))
        )
        return claimed.first() is not None

    def on_commit(self, fn: AfterCommit) -> None:
        """Run `fn` after the commit (in registration order); never if it rolls back."""
        self._after_commit.append(fn)

    async def _flush(self) -> None:
        if self._events:
            if self.db.outbox is None:
                raise RuntimeError("this service has no outbox table")
            await self.conn.execute(insert(self.db.outbox), self._events)


@asynccontextmanager
async def _next_transaction(conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    async with conn.begin():
        yield conn


class Database:
    """A service's PostgreSQL: the engine, its outbox and inbox, and units of work over them.

    `subjects` maps each event type the service publishes to its subject (its `events.py`).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        outbox: Table | None = None,
        inbox: Table | None = None,
        subjects: Mapping[type[Message], str] | None = None,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.inbox = inbox
        self._subjects = dict(subjects or {})
        self._events_committed: list[Callable[[], None]] = []

    @classmethod
    def for_service(
        cls,
        settings: ServiceSettings,
        *,
        outbox: Table | None = None,
        inbox: Table | None = None,
        subjects: Mapping[type[Message], str] | None = None,
        pool_size: int = 0,
    ) -> Database:
        """The service's database as its settings describe it (URL, pool, timeouts)."""
        engine = create_engine(
            settings.database_url,
            pool_size=pool_size or settings.database_pool_size,
            connect_timeout=settings.database_connect_timeout_seconds,
            pool_timeout=settings.database_pool_timeout_seconds,
            statement_timeout=settings.database_statement_timeout_seconds,
        )
        return cls(engine, outbox=outbox, inbox=inbox, subjects=subjects)

    def subject_of(self, event: Message) -> str:
        try:
            return self._subjects[type(event)]
        except KeyError:
            raise TypeError(f"{type(event).__name__} is not in this service's events") from None

    def when_events_committed(self, fn: Callable[[], None]) -> None:
        """`fn` is called after each commit that added events (the outbox relay's wake-up)."""
        self._events_committed.append(fn)

    def connect(self) -> Any:
        """A connection for reads (`async with db.connect() as conn`)."""
        return self.engine.connect()

    @asynccontextmanager
    async def begin(self, conn: AsyncConnection | None = None) -> AsyncIterator[UnitOfWork]:
        """A unit of work on a new pooled connection, or as the next transaction on `conn`
        (a long job holding a session-level lock runs its steps on the lock's connection)."""
        async with self.engine.begin() if conn is None else _next_transaction(conn) as tx_conn:
            tx = UnitOfWork(self, tx_conn)
            yield tx
            await tx._flush()
        if tx._events:
            for wake in self._events_committed:
                wake()
        for fn in tx._after_commit:
            try:
                await fn()
            except Exception:
                # The write is committed; an after-commit step failing must not undo the
                # answer. Each step is responsible for its own retry (see the catalog cache).
                log.exception("after-commit step %s failed", getattr(fn, "__name__", fn))

    async def dispose(self) -> None:
        await self.engine.dispose()
