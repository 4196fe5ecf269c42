"""The jobs view: every durable consumer of the event stream and of the scheduled jobs' stream
(ecom_runtime.jobs), as JetStream reports them, with the dead letters kept here. Ephemeral
consumers (a service catching up on revocations at start-up) are not jobs and are left out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ecom_runtime import jobs
from ecom_runtime.errors import Unavailable
from ecom_runtime.events import STREAM, connect_jetstream
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError

from notifications_service.dead_letters import DeadLetters

NATS_TIMEOUT = 3.0


@dataclass(frozen=True)
class JobState:
    name: str
    subject: str
    pending: int
    ack_pending: int
    redelivered: int
    dead_lettered: int
    last_delivered_at: datetime | None


class Jobs:
    def __init__(self, nats_url: str, dead_letters: DeadLetters) -> None:
        self._url = nats_url
        self._dead_letters = dead_letters
        self._nc: Any = None
        self._js: Any = None
        self._connecting = asyncio.Lock()

    async def states(self) -> list[JobState]:
        try:
            consumers = await asyncio.wait_for(self._consumers(), NATS_TIMEOUT)
        except (NatsError, TimeoutError, OSError):
            raise Unavailable("the event stream is unavailable; try again") from None
        dead = await self._dead_letters.counts()
        jobs = [
            JobState(
                name=info.name,
                subject=info.config.filter_subject or ", ".join(info.config.filter_subjects or []),
                pending=info.num_pending or 0,
                ack_pending=info.num_ack_pending or 0,
                redelivered=info.num_redelivered or 0,
                dead_lettered=dead.get(info.name, 0),
                last_delivered_at=info.delivered.last_active if info.delivered else None,
            )
            for info in consumers
            if info.config.durable_name
        ]
        return sorted(jobs, key=lambda job: job.name)

    async def _consumers(self) -> list[Any]:
        async with self._connecting:  # one connection, made on first use inside the loop
            if self._js is None:
                self._nc, self._js = await connect_jetstream(self._url)
        found = list(await self._js.consumers_info(STREAM))
        try:
            found += await self._js.consumers_info(jobs.STREAM)
        except NotFoundError:  # no service with scheduled jobs has started yet
            pass
        return found

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
