"""The one server interceptor every service runs: binds the caller's credentials, deadline and
trace context; refuses internal RPCs without a service credential and strings holding NUL;
maps domain errors to gRPC statuses with details, outages of PostgreSQL, Redis, NATS or the
network to UNAVAILABLE, and hides unexpected errors; logs RPCs.

No timer per RPC: every wait on a dependency has its own timeout (database, Redis, S3, NATS,
other services), and a caller's deadline, or the edge resetting the stream at its route
timeout, cancels the handler. The caller's deadline also bounds the calls an RPC makes.

Request logs: every RPC at DEBUG; at INFO only failures and RPCs slower than a second (a JSON
line per successful request costs a quarter of a small RPC's throughput; the edge's access log
can record every request instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc.aio import AbortError
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from ecom_runtime.auth import (
    SERVICE_CREDENTIAL_HEADER,
    Authenticator,
    ServiceCredentials,
    bind_call,
)
from ecom_runtime.db import OUTAGE_ERRORS
from ecom_runtime.errors import DomainError, Unavailable, status_trailers
from ecom_runtime.telemetry import rpc_duration
from ecom_runtime.validation import reject_nul

log = logging.getLogger("ecom.rpc")

# Metadata an RPC may read for authentication or idempotency; everything else stays out of
# the per-call context (and out of logs: authorization values are never logged).
_FORWARDED = ("authorization", "x-api-key", "idempotency-key", "stripe-signature", "x-cart-token")
SLOW_SECONDS = 1.0
# Failures of a dependency rather than of the request: the client may retry (HTTP 503).
# Redis and NATS clients raise subclasses of ConnectionError/TimeoutError or OSError.
_DEPENDENCY_ERRORS = (*OUTAGE_ERRORS, ConnectionError, OSError)


def _is_internal(method: str) -> bool:
    """`/ecommerce.catalog.v1.CatalogInternalService/ReserveStock` -> True."""
    return method.rpartition("/")[0].endswith("InternalService")


class RequestInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, credentials: ServiceCredentials) -> None:
        self._authenticator = authenticator
        self._credentials = credentials
        # One wrapped handler per method, built on first use rather than on every call.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method in self._wrapped:
            return self._wrapped[method]
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # health/reflection streams pass through untouched
        self._wrapped[method] = self._wrap(method, handler)
        return self._wrapped[method]

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        authenticator = self._authenticator
        credentials = self._credentials if _is_internal(method) else None
        service, _, name = method.strip("/").rpartition("/")
        rpc_attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        measured = service != "grpc.health.v1.Health"  # probes are not traffic

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            metadata: dict[str, str] = {}
            service_credential = None
            trace_token = None
            # With spans exported, OpenTelemetry's interceptor has made the RPC's span current
            # (recorded or not, as the caller's sampling decided): nothing to continue here.
            traced = trace.get_current_span().get_span_context().is_valid
            for key, value in context.invocation_metadata() or ():
                if key in _FORWARDED and isinstance(value, str):
                    metadata[key] = value
                elif key == SERVICE_CREDENTIAL_HEADER and isinstance(value, str):
                    service_credential = value
                elif key == "traceparent" and isinstance(value, str) and not traced:
                    # Continue the caller's trace (logs and outbox headers carry its id).
                    trace_token = otel_context.attach(propagate.extract({key: value}))
            remaining = context.time_remaining()
            deadline = None if remaining is None else time.monotonic() + remaining
            bind_call(authenticator, metadata, deadline)
            try:
                if credentials is not None:
                    credentials.check(service_credential)
                reject_nul(request)
                return await inner(request, context)
            except DomainError as error:
                code = error.code
                await context.abort(
                    error.code, error.message, trailing_metadata=status_trailers(error.to_status())
                )
            except NotImplementedError:
                # What generated base servicers raise for an RPC nobody has written yet.
                code = grpc.StatusCode.UNIMPLEMENTED
                await context.abort(code, f"{method} is not implemented yet")
            except AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except _DEPENDENCY_ERRORS as failure:
                # Logged without the error's text: a driver's message may quote SQL or data.
                log.warning("%s: dependency unavailable (%s)", method, type(failure).__name__)
                outage = Unavailable("a service this request needs is unavailable; try again")
                code = outage.code
                await context.abort(code, outage.message)
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error in %s", method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                elapsed = time.perf_counter() - started
                if measured:
                    status = {"rpc.grpc.status_code": code.value[0]}
                    rpc_duration.record(elapsed * 1000, {**rpc_attributes, **status})
                level = logging.DEBUG
                if elapsed > SLOW_SECONDS:
                    level = logging.WARNING
                elif code != grpc.StatusCode.OK:
                    level = logging.INFO
                if log.isEnabledFor(level):
                    elapsed_ms = round(elapsed * 1000, 2)
                    log.log(
                        level,
                        "%s %s %.2fms",
                        method,
                        code.name,
                        elapsed_ms,
                        extra={"method": method, "code": code.name, "duration_ms": elapsed_ms},
                    )
                if trace_token is not None:
                    otel_context.detach(trace_token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
