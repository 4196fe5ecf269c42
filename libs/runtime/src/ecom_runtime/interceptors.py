"""The one server interceptor every service runs: binds the caller's credentials, maps domain
errors to gRPC statuses with details, hides unexpected errors, and logs each RPC."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc.aio import AbortError

from ecom_runtime.auth import Authenticator, bind_call
from ecom_runtime.errors import DomainError, status_trailers

log = logging.getLogger("ecom.rpc")

# Metadata an RPC may read for authentication or idempotency; everything else stays out of
# the per-call context (and out of logs: authorization values are never logged).
_FORWARDED = ("authorization", "x-api-key", "idempotency-key", "stripe-signature")


class RequestInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # health/reflection streams pass through untouched
        method = handler_call_details.method
        inner = handler.unary_unary
        authenticator = self._authenticator

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            metadata = {
                key: value
                for key, value in (context.invocation_metadata() or ())
                if key in _FORWARDED and isinstance(value, str)
            }
            bind_call(authenticator, metadata)
            try:
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
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error in %s", method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                if log.isEnabledFor(logging.INFO):
                    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
                    log.info(
                        "%s %s %.2fms",
                        method,
                        code.name,
                        elapsed_ms,
                        extra={"method": method, "code": code.name, "duration_ms": elapsed_ms},
                    )

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
