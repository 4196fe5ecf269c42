"""gRPC servicer of the admin's jobs view and dead letters: proto messages in and out; the rules
live in jobs.py and dead_letters.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import grpc
from ecom_runtime.auth import require_admin
from ecom_runtime.server import Consumer
from ecom_runtime.validation import parse_uuid
from ecommerce.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from sqlalchemy import Row

from notifications_service.dead_letters import DeadLetters
from notifications_service.jobs import Jobs, JobState

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def job_message(job: JobState) -> notifications_pb2.Job:
    message = notifications_pb2.Job(
        name=job.name,
        subject=job.subject,
        pending=job.pending,
        ack_pending=job.ack_pending,
        redelivered=job.redelivered,
        dead_lettered=job.dead_lettered,
    )
    if job.last_delivered_at is not None:
        message.last_delivered_at.FromDatetime(job.last_delivered_at)
    return message


def dead_letter_message(row: Row[Any]) -> notifications_pb2.DeadLetter:
    message = notifications_pb2.DeadLetter(
        id=str(row.id),
        job=row.job,
        subject=row.subject,
        event_id=row.event_id,
        attempts=row.attempts,
        error=row.error,
    )
    message.created_at.FromDatetime(row.created_at)
    message.updated_at.FromDatetime(row.updated_at)
    return message


class NotificationAdminServicer(notifications_pb2_grpc.NotificationAdminServiceServicer):
    def __init__(
        self, jobs: Jobs, dead_letters: DeadLetters, consumers: Mapping[str, Consumer]
    ) -> None:
        self._jobs = jobs
        self._dead_letters = dead_letters
        self._consumers = consumers

    async def ListJobs(self, request: notifications_pb2.ListJobsRequest, context: Context) -> Any:
        await require_admin()
        jobs = await self._jobs.states()
        return notifications_pb2.ListJobsResponse(jobs=[job_message(j) for j in jobs])

    async def ListDeadLetters(
        self, request: notifications_pb2.ListDeadLettersRequest, context: Context
    ) -> Any:
        await require_admin()
        page = await self._dead_letters.list(request.page_size, request.page_token)
        return notifications_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter_message(r) for r in page.rows],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def ReplayDeadLetter(
        self, request: notifications_pb2.ReplayDeadLetterRequest, context: Context
    ) -> Any:
        await require_admin()
        await self._dead_letters.replay(parse_uuid("id", request.id), self._consumers)
        return notifications_pb2.ReplayDeadLetterResponse()
