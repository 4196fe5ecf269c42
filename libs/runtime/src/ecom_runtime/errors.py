"""Domain errors and how they become gRPC statuses (and so, at the edge, HTTP statuses).

Services raise these; the server interceptor turns them into a status with `google.rpc`
details. Anything else becomes INTERNAL with no detail, and is logged with its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[any_pb2.Any]:
        return []

    def to_status(self) -> status_pb2.Status:
        return status_pb2.Status(
            code=self.code.value[0], message=self.message, details=self.details()
        )


class InvalidArgument(DomainError):
    """Bad input: names every offending field (google.rpc.BadRequest)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        items = list(violations.items() if isinstance(violations, Mapping) else violations)
        self.violations = items
        super().__init__("; ".join(f"{field}: {why}" for field, why in items))

    def details(self) -> list[any_pb2.Any]:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in self.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        return [packed]


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(InvalidArgument):
    """A unique value is taken (HTTP 409); names the field like InvalidArgument does."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The request is valid but the system's state refuses it (HTTP 400).

    `violations` are (type, subject, description) triples sent as google.rpc.PreconditionFailure,
    e.g. ("OUT_OF_STOCK", product_id, "only 3 available").
    """

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, violations: Iterable[tuple[str, str, str]] = ()) -> None:
        super().__init__(message)
        self.violations = list(violations)

    def details(self) -> list[any_pb2.Any]:
        if not self.violations:
            return []
        failure = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=kind, subject=subject, description=description
                )
                for kind, subject, description in self.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(failure)
        return [packed]


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


def status_trailers(status: status_pb2.Status) -> tuple[tuple[str, bytes], ...]:
    """The trailer that carries rich details (what grpcio-status's to_status builds)."""
    return (("grpc-status-details-bin", status.SerializeToString()),)


assert code_pb2.INVALID_ARGUMENT == grpc.StatusCode.INVALID_ARGUMENT.value[0]
