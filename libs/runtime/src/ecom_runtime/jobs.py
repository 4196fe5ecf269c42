"""Background jobs run by JetStream, not by a timer in each web process.

A service declares `ScheduledJob("purge-guest-carts", every_seconds=3600, run=...)`. At start-up
it publishes the job's schedule to the `JOBS` stream (JetStream message schedules, NATS 2.14+):
one definition per job subject, so every replica publishing it keeps one schedule. The server
then publishes a trigger on `jobs.run.<service>.<job>` at each interval, and one durable
consumer per job, shared by the replicas, hands each trigger to exactly one of them. So a job
runs once per interval however many replicas there are, and its consumer's pending and
redelivered counts show in the jobs view like any other consumer's.

A trigger may carry JSON parameters for the run (`run(**params)`): the schedule's own are `{}`;
an operator or a test may publish one by hand (`trigger`). Triggers older than the interval
(piled up while every replica was down) are skipped, so a job runs at most once to catch up.
The stream is a work queue: a trigger is gone once acknowledged.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

log = logging.getLogger("ecom.jobs")

STREAM = "JOBS"
SUBJECTS = ["jobs.>"]
ACK_WAIT_SECONDS = 600.0  # a job may run this long before its trigger is handed out again


@dataclass(frozen=True)
class ScheduledJob:
    name: str  # lower-case words joined by "-", unique within the service
    # At least 1 (JetStream schedules count whole seconds); None: only when triggered.
    every_seconds: float | None
    run: Callable[..., Awaitable[Any]]
    # At fixed times instead: a six-field cron expression in UTC ("0 0 2 * * *": 02:00 daily);
    # `every_seconds` is then the longest a trigger may wait before it counts as stale.
    cron: str | None = None

    @property
    def pattern(self) -> str | None:
        """The Nats-Schedule header of the job's schedule (None: not scheduled)."""
        if self.cron is not None:
            return self.cron
        if self.every_seconds is None:
            return None
        return f"@every {max(1, math.ceil(self.every_seconds))}s"

    def subject(self, service: str) -> str:
        return f"jobs.run.{service}.{self.name}"

    def durable(self, service: str) -> str:
        return f"{service}-job-{self.name}"


async def ensure_stream(nc: NATS) -> None:
    """The JOBS stream, a work queue that allows message schedules (set through the JSON API:
    the client's StreamConfig has no field for it yet)."""
    config = {
        "name": STREAM,
        "subjects": SUBJECTS,
        "retention": "workqueue",
        "storage": "file",
        "max_age": 7 * 24 * 3600 * 10**9,  # nanoseconds
        "allow_msg_schedules": True,
    }
    reply = json.loads((await nc.request(f"$JS.API.STREAM.INFO.{STREAM}", b"", timeout=5)).data)
    if "error" in reply:
        reply = json.loads(
            (
                await nc.request(
                    f"$JS.API.STREAM.CREATE.{STREAM}", json.dumps(config).encode(), timeout=5
                )
            ).data
        )
        # Another replica may have created it a moment before: that is fine.
        if "error" in reply and reply["error"].get("err_code") != 10058:
            raise RuntimeError(f"cannot create the {STREAM} stream: {reply['error']}")


async def schedule(js: JetStreamContext, service: str, job: ScheduledJob) -> None:
    """Publishes the job's schedule, unless the stream holds it already: republishing restarts
    an `@every` interval, and replicas restarting more often than it would starve the job."""
    if job.pattern is None:
        return
    subject = f"jobs.schedule.{service}.{job.name}"
    try:
        current = await js.get_last_msg(STREAM, subject)
        if (current.headers or {}).get("Nats-Schedule") == job.pattern:
            return
    except NotFoundError:
        pass
    await js.publish(
        subject,
        b"{}",
        headers={"Nats-Schedule": job.pattern, "Nats-Schedule-Target": job.subject(service)},
        timeout=5,
    )


async def trigger(js: JetStreamContext, service: str, name: str, **params: Any) -> None:
    """Runs a job now (once, by one replica), with these parameters."""
    await js.publish(f"jobs.run.{service}.{name}", json.dumps(params).encode(), timeout=5)


async def run_consumer(js: JetStreamContext, service: str, job: ScheduledJob) -> None:
    subscription = await js.pull_subscribe(
        job.subject(service),
        durable=job.durable(service),
        stream=STREAM,
        config=ConsumerConfig(ack_wait=ACK_WAIT_SECONDS, max_deliver=3),
    )
    while True:
        try:
            messages = await subscription.fetch(1, timeout=5.0)
        except TimeoutError:
            continue
        for message in messages:
            await _run_once(job, message)


async def _run_once(job: ScheduledJob, message: Any) -> None:
    age = (datetime.now(UTC) - message.metadata.timestamp).total_seconds()
    is_scheduled = "Nats-Scheduler" in (message.headers or {})
    if is_scheduled and age > max(job.every_seconds or 0.0, 1.0) + 1.0:
        await message.ack()  # a trigger that waited out its interval: the next one is due
        return
    try:
        params = json.loads(message.data or b"{}")
        if not isinstance(params, dict):
            raise ValueError("parameters must be a JSON object")
        inspect.signature(job.run).bind(**params)
    except (ValueError, TypeError):
        log.warning("job %s: ignoring a trigger with bad parameters", job.name)
        await message.ack()
        return
    try:
        await job.run(**params)
    except Exception:
        log.exception("job %s failed", job.name)
        await message.nak(delay=5.0)  # up to max_deliver tries, then the next interval
        return
    await message.ack()
