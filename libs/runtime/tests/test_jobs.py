"""Jobs run by JetStream (ecom_runtime.jobs) on the stack's NATS: a schedule triggers runs, each
trigger runs once however many replicas consume it, a failing run is retried, and a trigger
with bad parameters is dropped without stopping the job."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import nats
from ecom_runtime.jobs import (
    STREAM,
    ScheduledJob,
    ensure_stream,
    run_consumer,
    schedule,
    trigger,
)

from conftest import eventually, tag


@contextlib.asynccontextmanager
async def replicas(stack, service: str, job: ScheduledJob, count: int) -> AsyncIterator:
    """`count` consumers of the job, as `count` processes of a service would run them."""
    nc = await nats.connect(stack.nats_url)
    await ensure_stream(nc)
    js = nc.jetstream()
    tasks = [asyncio.create_task(run_consumer(js, service, job)) for _ in range(count)]
    try:
        yield js
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()


async def test_each_trigger_runs_once_across_replicas(stack) -> None:
    runs: list[int] = []

    async def record(n: int) -> None:
        runs.append(n)

    service, job = f"test{tag()}", ScheduledJob("record", None, record)
    async with replicas(stack, service, job, 3) as js:
        for n in range(20):
            await trigger(js, service, "record", n=n)
        await eventually(lambda: len(runs) >= 20)

        # A trigger could run a second time only if it were delivered again: once every
        # trigger is acknowledged, none may have been redelivered.
        async def settled():
            info = await js.consumer_info(STREAM, job.durable(service))
            return info if info.num_pending == info.num_ack_pending == 0 else None

        info = await eventually(settled, what="every trigger acknowledged")
        assert info.num_redelivered == 0
    assert sorted(runs) == list(range(20))


async def test_a_schedule_triggers_runs(stack) -> None:
    runs: list[float] = []

    async def tick() -> None:
        runs.append(time.monotonic())

    service, job = f"test{tag()}", ScheduledJob("tick", 1, tick)
    async with replicas(stack, service, job, 2) as js:
        await schedule(js, service, job)
        await eventually(lambda: len(runs) >= 2)


async def test_a_failing_run_is_retried_and_bad_parameters_are_dropped(stack) -> None:
    attempts: list[str] = []

    async def flaky(label: str) -> None:
        attempts.append(label)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    service, job = f"test{tag()}", ScheduledJob("flaky", None, flaky)
    async with replicas(stack, service, job, 1) as js:
        await js.publish(f"jobs.run.{service}.flaky", b"[not, json")
        await trigger(js, service, "flaky", unknown=1)
        await trigger(js, service, "flaky", label="a")
        await eventually(lambda: len(attempts) >= 2, within=30)
    assert attempts == ["a", "a"]  # the bad triggers never ran; the failed run ran again
