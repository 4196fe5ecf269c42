"""Unit of work, outbox relay, claim_once and the inbox consumer against the stack's real
PostgreSQL and NATS JetStream."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from ecom_runtime.db import Database, create_engine, service_metadata
from ecom_runtime.events import (
    EventConsumer,
    FailedEvent,
    OutboxRelay,
    add_event_tables,
    connect_jetstream,
)
from ecommerce.events.v1 import events_pb2
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import Column, Integer, Table, Text, insert, select, text

SCHEMA = f"events_test_{uuid.uuid4().hex[:8]}"
metadata = service_metadata(SCHEMA)
outbox, inbox = add_event_tables(metadata)
effects = Table("effects", metadata, Column("id", Integer, primary_key=True), Column("note", Text))


@pytest.fixture(scope="module")
async def engine(stack):
    engine = create_engine(stack.database_url, pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
        await conn.run_sync(metadata.create_all)
    yield engine
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{SCHEMA}" CASCADE'))
    await engine.dispose()


@pytest.fixture
async def jetstream(stack):
    nc, js = await connect_jetstream(stack.nats_url)
    yield js
    await nc.close()


def subject() -> str:
    return f"ecom.test.{uuid.uuid4().hex[:8]}"


def database(engine, topic: str = "ecom.test.unused") -> Database:
    """The events table of this test's schema; UserRegistered goes to `topic`."""
    return Database(engine, outbox=outbox, inbox=inbox, subjects={events_pb2.UserRegistered: topic})


async def test_event_is_published_only_if_the_transaction_commits(engine, jetstream) -> None:
    topic = subject()
    sub = await jetstream.subscribe(topic, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    db = database(engine, topic)
    async with db.begin() as tx:
        kept_id = tx.add(events_pb2.UserRegistered(user_id="u1", email="a@b.c"))
    with pytest.raises(RuntimeError):
        async with db.begin() as tx:
            tx.add(events_pb2.UserRegistered(user_id="rolled-back"))
            raise RuntimeError("the state change failed")

    relay = OutboxRelay(db)
    assert await relay.publish_batch(jetstream) == 1
    message = await sub.next_msg(timeout=5)
    assert message.headers["Nats-Msg-Id"] == kept_id
    event = events_pb2.UserRegistered.FromString(message.data)
    assert (event.event_id, event.user_id) == (kept_id, "u1")
    assert event.occurred_at.seconds > 0
    async with engine.connect() as conn:
        assert (await conn.execute(select(outbox))).all() == []  # relayed rows are removed


async def test_republishing_an_event_id_is_dropped_by_jetstream(engine, jetstream) -> None:
    topic = subject()
    event_id = str(uuid.uuid4())
    db = database(engine, topic)
    for _ in range(2):  # e.g. the relay crashed after publishing, before deleting the row
        async with db.begin() as tx:
            tx.add(events_pb2.UserRegistered(event_id=event_id))
        await OutboxRelay(db).publish_batch(jetstream)
    info = await jetstream.stream_info("ECOM", subjects_filter=topic)
    assert info.state.subjects == {topic: 1}


async def test_a_redelivered_event_is_applied_once(engine, jetstream) -> None:
    topic = subject()

    async def handler(tx, event: events_pb2.UserRegistered) -> None:
        await tx.conn.execute(insert(effects).values(note=event.user_id))

    durable = f"test-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        db=database(engine),
        js=jetstream,
        durable=durable,
        subject=topic,
        message_type=events_pb2.UserRegistered,
        handler=handler,
    )
    payload = events_pb2.UserRegistered(user_id=durable).SerializeToString()
    await jetstream.publish(topic, payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})
    sub = await jetstream.pull_subscribe(
        topic, durable=durable, config=ConsumerConfig(ack_wait=1.0)
    )
    [first] = await sub.fetch(1, timeout=5)
    assert await consumer.apply(first)  # applied... and then the process dies before acking
    # JetStream redelivers the same message once the ack wait has passed.
    [again] = await sub.fetch(1, timeout=10)
    assert again.metadata.sequence.stream == first.metadata.sequence.stream
    assert again.metadata.num_delivered == 2
    assert not await consumer.apply(again)
    await again.ack()
    async with engine.connect() as conn:
        notes = (await conn.execute(select(effects.c.note).where(effects.c.note == durable))).all()
    assert len(notes) == 1


async def test_consumer_loop_acks_and_survives_a_failing_handler(engine, jetstream) -> None:
    topic = subject()
    seen: list[str] = []

    async def flaky(tx, event: events_pb2.UserRegistered) -> None:
        seen.append(event.user_id)
        if len(seen) == 1:
            raise RuntimeError("SMTP down")  # rolled back, nak'd, redelivered
        await tx.conn.execute(insert(effects).values(note=f"loop-{event.user_id}"))

    consumer = EventConsumer(
        db=database(engine),
        js=jetstream,
        durable=f"loop-{uuid.uuid4().hex[:8]}",
        subject=topic,
        message_type=events_pb2.UserRegistered,
        handler=flaky,
    )
    await jetstream.publish(
        topic,
        events_pb2.UserRegistered(user_id="retry").SerializeToString(),
        headers={"Nats-Msg-Id": str(uuid.uuid4())},
    )
    task = asyncio.create_task(consumer.run())
    query = select(effects).where(effects.c.note == "loop-retry")
    try:
        async with asyncio.timeout(15):
            while True:  # until the retried delivery has committed its effect
                async with engine.connect() as conn:
                    rows = (await conn.execute(query)).all()
                if rows:
                    break
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(rows) == 1 and seen == ["retry", "retry"]


async def test_the_last_failed_attempt_goes_to_the_dead_letter_keeper(engine, jetstream) -> None:
    topic = subject()
    attempts: list[int] = []
    kept: list[FailedEvent] = []
    was_kept = asyncio.Event()
    keeper_down = True

    async def broken(tx, event: events_pb2.UserRegistered) -> None:
        attempts.append(len(attempts) + 1)
        raise RuntimeError("SMTP down")

    async def keep(failed: FailedEvent) -> None:
        nonlocal keeper_down
        if keeper_down:  # keeping fails once: the event must come back, not be dropped
            keeper_down = False
            raise RuntimeError("database down")
        kept.append(failed)
        was_kept.set()

    durable = f"dead-{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        db=database(engine),
        js=jetstream,
        durable=durable,
        subject=topic,
        message_type=events_pb2.UserRegistered,
        handler=broken,
        max_deliver=2,
        dead_letter=keep,
    )
    event_id = str(uuid.uuid4())
    payload = events_pb2.UserRegistered(user_id="doomed").SerializeToString()
    await jetstream.publish(topic, payload, headers={"Nats-Msg-Id": event_id})
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(15):
            await was_kept.wait()
            while True:  # acknowledged once kept
                if not (await jetstream.consumer_info("ECOM", durable)).num_ack_pending:
                    break
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [failed] = kept
    assert (failed.consumer, failed.subject, failed.event_id) == (durable, topic, event_id)
    assert (failed.payload, failed.attempts, attempts) == (payload, 3, [1, 2, 3])
    assert failed.error == "RuntimeError: SMTP down"


async def test_prune_inbox_forgets_only_old_claims(engine) -> None:
    from datetime import UTC, datetime, timedelta

    from ecom_runtime.events import prune_inbox

    old, recent = f"old-{uuid.uuid4()}", f"recent-{uuid.uuid4()}"
    async with engine.begin() as conn:
        await conn.execute(
            insert(inbox).values(
                scope="prune-test", key=old, claimed_at=datetime.now(UTC) - timedelta(days=9)
            )
        )
        await conn.execute(insert(inbox).values(scope="prune-test", key=recent))
    assert await prune_inbox(database(engine), keep_seconds=8 * 24 * 3600) >= 1
    async with engine.connect() as conn:
        kept = (
            (await conn.execute(select(inbox.c.key).where(inbox.c.scope == "prune-test")))
            .scalars()
            .all()
        )
    assert kept == [recent]


async def test_claim_once_lets_exactly_one_of_racing_claims_win(engine) -> None:
    db = database(engine)
    key = str(uuid.uuid4())

    async def claim() -> bool:
        async with db.begin() as tx:
            won = await tx.claim_once("race", key)
            await asyncio.sleep(0.05)  # hold the transaction open while the others try
            return won

    outcomes = await asyncio.gather(*(claim() for _ in range(8)))
    assert sorted(outcomes) == [False] * 7 + [True]
    # Another scope is another namespace: the same key is new there.
    async with db.begin() as tx:
        assert await tx.claim_once("another-scope", key)


async def test_a_rolled_back_claim_frees_its_key(engine) -> None:
    db = database(engine)
    key = str(uuid.uuid4())
    with pytest.raises(RuntimeError):
        async with db.begin() as tx:
            assert await tx.claim_once("webhooks", key)
            raise RuntimeError("applying the effect failed")
    async with db.begin() as tx:
        assert await tx.claim_once("webhooks", key)  # the retry may apply it


async def test_on_commit_runs_after_the_commit_and_never_after_a_rollback(engine) -> None:
    db = database(engine)
    seen: list[str] = []
    note = f"uow-{uuid.uuid4().hex[:8]}"

    async def visible_after_commit() -> None:
        async with engine.connect() as conn:  # another connection sees the committed row
            found = await conn.scalar(select(effects.c.note).where(effects.c.note == note))
        seen.append(f"committed:{found}")

    async def never() -> None:
        seen.append("rolled back!")

    async with db.begin() as tx:
        await tx.conn.execute(insert(effects).values(note=note))
        tx.on_commit(visible_after_commit)
        assert seen == []  # not yet: still inside the transaction
    with pytest.raises(RuntimeError):
        async with db.begin() as tx:
            tx.on_commit(never)
            raise RuntimeError("boom")
    assert seen == [f"committed:{note}"]


async def test_an_event_type_the_service_does_not_publish_is_refused(engine) -> None:
    with pytest.raises(TypeError, match="StockLow"):
        async with database(engine).begin() as tx:
            tx.add(events_pb2.StockLow(product_id="p"))
