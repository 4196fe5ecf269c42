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
