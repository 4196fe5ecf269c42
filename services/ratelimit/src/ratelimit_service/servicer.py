"""`ShouldRateLimit` as Envoy's ratelimit filter calls it (see gateway/ecom_gateway/envoy.py)."""

from __future__ import annotations

import math

import grpc
from envoy_rls.config.core.v3 import base_pb2
from envoy_rls.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratelimit_service.limiter import Budget, FixedWindows

Response = rls_pb2.RateLimitResponse
# Descriptor keys the edge sends: the budget's name and the client address.
BUDGET_KEY = "budget"
ADDRESS_KEY = "remote_address"
# Envoy's X-RateLimit-Limit names the window by unit; others are left UNKNOWN (`w=0`).
UNITS = {1: Response.RateLimit.SECOND, 60: Response.RateLimit.MINUTE, 3600: Response.RateLimit.HOUR,
         86400: Response.RateLimit.DAY}  # fmt: skip


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):
    """Over limit when any descriptor is; descriptors without a known budget are not counted."""

    def __init__(self, windows: FixedWindows, budgets: dict[str, Budget]) -> None:
        self._windows = windows
        self._budgets = budgets

    async def ShouldRateLimit(
        self, request: rls_pb2.RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> Response:
        hits = request.hits_addend or 1  # Envoy leaves it 0 for "one request"
        reply = Response(overall_code=Response.OK)
        retry_after = 0
        for descriptor in request.descriptors:
            entries = {entry.key: entry.value for entry in descriptor.entries}
            budget = self._budgets.get(entries.get(BUDGET_KEY, ""))
            if budget is None:
                reply.statuses.add(code=Response.OK)
                continue
            key = "rl:{}:{}:{}".format(request.domain, budget.name, entries.get(ADDRESS_KEY, ""))
            usage = await self._windows.hit(key, budget, hits)
            if usage is None:  # store unavailable: fail open, counted by the limiter
                reply.statuses.add(code=Response.OK)
                continue
            over = usage.count > budget.limit
            status = reply.statuses.add(
                code=Response.OVER_LIMIT if over else Response.OK,
                limit_remaining=max(0, budget.limit - usage.count),
            )
            status.current_limit.requests_per_unit = budget.limit
            status.current_limit.unit = UNITS.get(budget.window_seconds, Response.RateLimit.UNKNOWN)
            status.current_limit.name = budget.name
            status.duration_until_reset.FromMilliseconds(usage.reset_ms)
            if over:
                reply.overall_code = Response.OVER_LIMIT
                retry_after = max(retry_after, math.ceil(usage.reset_ms / 1000))
        if reply.overall_code == Response.OVER_LIMIT:
            reply.response_headers_to_add.append(
                base_pb2.HeaderValue(key="retry-after", value=str(max(retry_after, 1)))
            )
        return reply
