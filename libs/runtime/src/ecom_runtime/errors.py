"""Domain errors and how they become gRPC statuses (and so, at the edge, HTTP statuses).

Services raise these; the server interceptor turns them into a status with `google.rpc`
details. Anything else becomes INTERNAL with no detail, and is logged with its traceback.
A refusal a client may act on carries a `reason`: a stable UPPER_SNAKE code sent as
`google.rpc.ErrorInfo` (each service lists its reasons in its `errors.py`). `from_status`
turns a status received from another service back into the same domain error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

ERROR_DOMAIN = "ecommerce"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        # Sent in the ErrorInfo beside the reason (e.g. a card's decline code).
        self.metadata = dict(metadata or {})

    def details(self) -> list[any_pb2.Any]:
        return []

    def to_status(self) -> status_pb2.Status:
        details = self.details()
        if self.reason:
            info = error_details_pb2.ErrorInfo(
                reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
            )
            details.insert(0, _pack(info))
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)


class InvalidArgument(DomainError):
    """Bad input: names every offending field (google.rpc.BadRequest)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self, violations: Mapping[str, str] | Iterable[tuple[str, str]], *, reason: str = ""
    ) -> None:
        items = list(violations.items() if isinstance(violations, Mapping) else violations)
        self.violations = items
        super().__init__("; ".join(f"{field}: {why}" for field, why in items), reason=reason)

    def details(self) -> list[any_pb2.Any]:
        return [
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                        for f, d in self.violations
                    ]
                )
            )
        ]


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(InvalidArgument):
    """A unique value is taken (HTTP 409); names the field like InvalidArgument does."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The request is valid but the system's state refuses it (HTTP 400).

    `violations` are (type, subject, description) triples sent as google.rpc.PreconditionFailure,
    e.g. ("OUT_OF_STOCK", product_id, "only 3 available"). The reason defaults to the first
    violation's type.
    """

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(
        self,
        message: str,
        violations: Iterable[tuple[str, str, str]] = (),
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.violations = list(violations)
        super().__init__(
            message,
            reason=reason or (self.violations[0][0] if self.violations else ""),
            metadata=metadata,
        )

    def details(self) -> list[any_pb2.Any]:
        if not self.violations:
            return []
        return [
            _pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type=kind, subject=subject, description=description
                        )
                        for kind, subject, description in self.violations
                    ]
                )
            )
        ]


class Aborted(DomainError):
    code = grpc.StatusCode.ABORTED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    """A dependency is down; the client may retry (HTTP 503)."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(DomainError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


def status_trailers(status: status_pb2.Status) -> tuple[tuple[str, bytes], ...]:
    """The trailer that carries rich details (what grpcio-status's to_status builds)."""
    return (("grpc-status-details-bin", status.SerializeToString()),)


_BY_CODE: dict[grpc.StatusCode, type[DomainError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        Unauthenticated,
        PermissionDenied,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
    )
}


def from_status(code: grpc.StatusCode, message: str, details_bin: bytes | None) -> DomainError:
    """The domain error a status from another service stands for, its details kept.

    A code with no domain meaning here (INTERNAL, UNKNOWN, UNIMPLEMENTED...) is UNAVAILABLE to
    our caller: the other service failed, not the caller's request.
    """
    reason = ""
    metadata: dict[str, str] = {}
    field_violations: list[tuple[str, str]] = []
    preconditions: list[tuple[str, str, str]] = []
    if details_bin:
        for detail in status_pb2.Status.FromString(details_bin).details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                field_violations += [(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
                failure = error_details_pb2.PreconditionFailure()
                detail.Unpack(failure)
                preconditions += [(v.type, v.subject, v.description) for v in failure.violations]
    cls = _BY_CODE.get(code)
    if cls is None:
        return Unavailable(message or code.name.lower(), reason=reason)
    error: DomainError
    if issubclass(cls, InvalidArgument):
        error = cls(field_violations or [("", message)], reason=reason)
    elif cls is FailedPrecondition:
        error = FailedPrecondition(message, preconditions, reason=reason)
    else:
        error = cls(message, reason=reason)
    error.metadata = metadata
    return error


assert code_pb2.INVALID_ARGUMENT == grpc.StatusCode.INVALID_ARGUMENT.value[0]
