import grpc
from ecom_runtime.errors import AlreadyExists, InvalidArgument, NotFound
from google.rpc import error_details_pb2


def test_invalid_argument_names_every_field_in_bad_request_details() -> None:
    status = InvalidArgument({"email": "is required", "password": "is too short"}).to_status()
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "email: is required" in status.message
    details = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(details)
    assert [(v.field, v.description) for v in details.field_violations] == [
        ("email", "is required"),
        ("password", "is too short"),
    ]


def test_already_exists_is_409_class_and_names_the_field() -> None:
    error = AlreadyExists({"email": "is already registered"})
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.violations == [("email", "is already registered")]


def test_plain_errors_carry_no_details() -> None:
    assert list(NotFound("user not found").to_status().details) == []


def test_a_reason_travels_as_error_info_and_comes_back_from_another_service() -> None:
    from ecom_runtime.errors import FailedPrecondition, from_status

    refusal = FailedPrecondition(
        "not enough stock for every item", [("OUT_OF_STOCK", "p1", "only 2 available")]
    )
    status = refusal.to_status()
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert (info.reason, info.domain) == ("OUT_OF_STOCK", "ecommerce")
    back = from_status(
        grpc.StatusCode.FAILED_PRECONDITION, status.message, status.SerializeToString()
    )
    assert isinstance(back, FailedPrecondition)
    assert (back.reason, back.violations) == ("OUT_OF_STOCK", refusal.violations)


def test_field_violations_come_back_as_invalid_argument() -> None:
    from ecom_runtime.errors import from_status

    sent = InvalidArgument({"items[0].quantity": "must be 1 to 1,000"}).to_status()
    back = from_status(grpc.StatusCode.INVALID_ARGUMENT, sent.message, sent.SerializeToString())
    assert isinstance(back, InvalidArgument)
    assert back.violations == [("items[0].quantity", "must be 1 to 1,000")]


def test_a_status_with_no_domain_meaning_is_unavailable_to_our_caller() -> None:
    from ecom_runtime.errors import Unavailable, from_status

    assert isinstance(from_status(grpc.StatusCode.INTERNAL, "internal error", None), Unavailable)
