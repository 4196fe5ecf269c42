"""The auth service over gRPC, against the real stack (PostgreSQL, NATS; reset emails come
through the notifications service to the SMTP sink)."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest
from ecommerce.auth.v1 import auth_pb2 as pb
from ecommerce.auth.v1 import auth_pb2_grpc

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    mail_text,
    mails,
    rpc_error,
    unique_email,
    violations,
    wait_for_mail,
)

PASSWORD = "correct horse battery"


@pytest.fixture
def auth(auth_channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceStub:
    return auth_pb2_grpc.AuthServiceStub(auth_channel)


@pytest.fixture
def users(auth_channel: grpc.aio.Channel) -> auth_pb2_grpc.UserServiceStub:
    return auth_pb2_grpc.UserServiceStub(auth_channel)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def register(auth, email: str | None = None, password: str = PASSWORD) -> pb.AuthSession:
    return await auth.Register(
        pb.RegisterRequest(email=email or unique_email(), password=password, name="Ada")
    )


async def admin_session(auth) -> pb.AuthSession:
    return await auth.Login(pb.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))


def count_users(sql, email: str) -> int:
    return sql("select count(*) from auth.users where email = %s", email.lower())[0][0]


# --- register and login -------------------------------------------------------------------


async def test_register_signs_in_a_customer(auth) -> None:
    email = unique_email("Mixed.Case")
    session = await register(auth, email)
    assert session.user.email == email.lower()
    assert session.user.role == pb.ROLE_CUSTOMER
    assert session.token_type == "Bearer" and session.expires_in == 900
    assert session.refresh_token.startswith("rt_")
    me = await auth.GetMe(pb.GetMeRequest(), metadata=bearer(session.access_token))
    assert me.user == session.user


async def test_password_is_stored_as_a_bcrypt_hash(auth, sql) -> None:
    session = await register(auth)
    [(stored,)] = sql("select password_hash from auth.users where id = %s", session.user.id)
    assert stored.startswith("$2b$") and PASSWORD not in stored


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({"email": "", "password": PASSWORD, "name": "A"}, {"email": "is required"}),
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, {"email": "is not a valid"}),
        ({"email": "x@y.com", "password": "short", "name": "A"}, {"password": "at least 8"}),
        ({"email": "x@y.com", "password": "é" * 40, "name": "A"}, {"password": "at most 72 bytes"}),
        ({"email": "x@y.com", "password": PASSWORD, "name": "  "}, {"name": "is required"}),
        ({"email": "x@y.com", "password": PASSWORD, "name": "n" * 101}, {"name": "1 to 100"}),
        (
            {"email": "bad", "password": "", "name": ""},
            {"email": "is not a valid", "password": "is required", "name": "is required"},
        ),
    ],
)
async def test_register_names_every_bad_field_and_stores_nothing(
    auth, sql, request_fields, expected
) -> None:
    before = sql("select count(*) from auth.users")[0][0]
    error = await rpc_error(auth.Register(pb.RegisterRequest(**request_fields)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(error)
    assert set(found) == set(expected)
    for field, fragment in expected.items():
        assert fragment in found[field]
    assert sql("select count(*) from auth.users")[0][0] == before


async def test_duplicate_email_is_already_exists_whatever_the_case(auth, sql) -> None:
    email = unique_email()
    await register(auth, email)
    error = await rpc_error(register(auth, email.upper()))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert violations(error) == {"email": "is already registered"}
    assert count_users(sql, email) == 1


async def test_racing_registrations_of_one_email_create_one_account(auth, sql) -> None:
    email = unique_email("race")
    results = await asyncio.gather(
        *(register(auth, email) for _ in range(12)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, pb.AuthSession)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert {e.code() for e in losers} == {grpc.StatusCode.ALREADY_EXISTS}
    assert count_users(sql, email) == 1


async def test_login_answers_alike_for_unknown_email_and_wrong_password(auth) -> None:
    email = unique_email()
    await register(auth, email)
    wrong = await rpc_error(auth.Login(pb.LoginRequest(email=email, password="wrong password")))
    unknown = await rpc_error(auth.Login(pb.LoginRequest(email=unique_email(), password=PASSWORD)))
    assert wrong.code() == unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong.details() == unknown.details() == "email or password is incorrect"
    session = await auth.Login(pb.LoginRequest(email=email.upper(), password=PASSWORD))
    assert session.user.email == email


# --- refresh rotation and reuse detection -------------------------------------------------


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(auth) -> None:
    first = await register(auth)
    second = await auth.Refresh(pb.RefreshRequest(refresh_token=first.refresh_token))
    assert second.refresh_token != first.refresh_token
    assert second.user.id == first.user.id
    # Someone replays the spent token (a thief, or the victim after the thief refreshed).
    reuse = await rpc_error(auth.Refresh(pb.RefreshRequest(refresh_token=first.refresh_token)))
    assert reuse.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "already used" in reuse.details()
    # ...so the legitimate successor is dead too.
    after = await rpc_error(auth.Refresh(pb.RefreshRequest(refresh_token=second.refresh_token)))
    assert after.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_racing_refreshes_of_one_token_succeed_once(auth) -> None:
    session = await register(auth)
    request = pb.RefreshRequest(refresh_token=session.refresh_token)
    results = await asyncio.gather(
        *(auth.Refresh(request) for _ in range(8)), return_exceptions=True
    )
    assert sum(isinstance(r, pb.AuthSession) for r in results) == 1


async def test_other_sign_ins_survive_reuse_detection(auth) -> None:
    email = unique_email()
    phone = await register(auth, email)
    laptop = await auth.Login(pb.LoginRequest(email=email, password=PASSWORD))
    await auth.Refresh(pb.RefreshRequest(refresh_token=phone.refresh_token))
    await rpc_error(auth.Refresh(pb.RefreshRequest(refresh_token=phone.refresh_token)))
    assert await auth.Refresh(pb.RefreshRequest(refresh_token=laptop.refresh_token))


async def test_logout_revokes_the_family_and_is_idempotent(auth) -> None:
    session = await register(auth)
    await auth.Logout(pb.LogoutRequest(refresh_token=session.refresh_token))
    await auth.Logout(pb.LogoutRequest(refresh_token=session.refresh_token))
    await auth.Logout(pb.LogoutRequest(refresh_token="rt_never_issued"))
    error = await rpc_error(auth.Refresh(pb.RefreshRequest(refresh_token=session.refresh_token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_expired_refresh_token_is_refused(auth, sql) -> None:
    session = await register(auth)
    sql(
        "update auth.refresh_tokens set expires_at = now() - interval '1 second' "
        "where user_id = %s",
        session.user.id,
    )
    error = await rpc_error(auth.Refresh(pb.RefreshRequest(refresh_token=session.refresh_token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_refresh_tokens_are_stored_hashed(auth, sql) -> None:
    session = await register(auth)
    rows = sql("select token_hash from auth.refresh_tokens where user_id = %s", session.user.id)
    assert rows and all(session.refresh_token.encode() not in bytes(r[0]) for r in rows)


# --- password reset ----------------------------------------------------------------------


RESET = "Reset your password"


async def reset_token_mailed(maildir, to: str) -> str:
    body = mail_text(await wait_for_mail(maildir, to, RESET))
    return re.search(r"reset token: (\S+)", body).group(1)


async def test_password_reset_by_email_end_to_end(auth, stack, sql) -> None:
    email = unique_email("reset")
    session = await register(auth, email)
    await auth.ForgotPassword(pb.ForgotPasswordRequest(email=email))
    token = await reset_token_mailed(stack.maildir, email)
    # Only a hash is at rest.
    [(stored,)] = sql(
        "select token_hash from auth.password_reset_tokens where user_id = %s", session.user.id
    )
    assert token.encode() not in bytes(stored)
    # The outbox row is gone once relayed; no table holds the plain token.
    assert (
        sql("select count(*) from auth.outbox where payload like %s", f"%{token}%".encode())[0][0]
        == 0
    )

    await auth.ResetPassword(pb.ResetPasswordRequest(token=token, new_password="a brand new one"))
    # Single use.
    again = await rpc_error(
        auth.ResetPassword(pb.ResetPasswordRequest(token=token, new_password="yet another one"))
    )
    assert again.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "token" in violations(again)
    # Old sessions are revoked; the new password works, the old one does not.
    revoked = await rpc_error(auth.Refresh(pb.RefreshRequest(refresh_token=session.refresh_token)))
    assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED
    await auth.Login(pb.LoginRequest(email=email, password="a brand new one"))
    old = await rpc_error(auth.Login(pb.LoginRequest(email=email, password=PASSWORD)))
    assert old.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_forgot_password_for_unknown_email_succeeds_and_sends_nothing(auth, stack) -> None:
    email = unique_email("nobody")
    assert await auth.ForgotPassword(pb.ForgotPasswordRequest(email=email)) == (
        pb.ForgotPasswordResponse()
    )
    # A known address's mail arrives through the same pipeline; by then the unknown one would have.
    known = unique_email("known")
    await register(auth, known)
    await auth.ForgotPassword(pb.ForgotPasswordRequest(email=known))
    await wait_for_mail(stack.maildir, known, RESET)
    assert mails(stack.maildir, email) == []


async def test_expired_reset_token_is_refused(auth, stack, sql) -> None:
    email = unique_email("late")
    await register(auth, email)
    await auth.ForgotPassword(pb.ForgotPasswordRequest(email=email))
    token = await reset_token_mailed(stack.maildir, email)
    sql(
        "update auth.password_reset_tokens set expires_at = now() - interval '1 second' "
        "where user_id = (select id from auth.users where email = %s)",
        email,
    )
    error = await rpc_error(
        auth.ResetPassword(pb.ResetPasswordRequest(token=token, new_password="a brand new one"))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    await auth.Login(pb.LoginRequest(email=email, password=PASSWORD))  # unchanged


async def test_reset_with_a_short_password_changes_nothing(auth) -> None:
    error = await rpc_error(
        auth.ResetPassword(pb.ResetPasswordRequest(token="whatever", new_password="short"))
    )
    assert set(violations(error)) == {"new_password"}


# --- roles, users administration ---------------------------------------------------------


async def test_customer_cannot_use_admin_rpcs(auth, users) -> None:
    customer = await register(auth)
    for call in (
        users.ListUsers(pb.ListUsersRequest(), metadata=bearer(customer.access_token)),
        auth.CreateApiKey(pb.CreateApiKeyRequest(name="x"), metadata=bearer(customer.access_token)),
    ):
        assert (await rpc_error(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    anonymous = await rpc_error(users.ListUsers(pb.ListUsersRequest()))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_admin_pages_through_users_newest_first(auth, users) -> None:
    admin = await admin_session(auth)
    created = [(await register(auth)).user.id for _ in range(3)]
    seen: list[str] = []
    token = ""
    while True:
        page = await users.ListUsers(
            pb.ListUsersRequest(page_size=2, page_token=token), metadata=bearer(admin.access_token)
        )
        assert len(page.users) <= 2 and page.total_size >= 4
        seen += [u.id for u in page.users]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == page.total_size
    assert seen[:3] == list(reversed(created)) or set(created) <= set(seen)
    assert seen.index(created[2]) < seen.index(created[1]) < seen.index(created[0])


async def test_admin_updates_and_deletes_a_user(auth, users, sql) -> None:
    admin = bearer((await admin_session(auth)).access_token)
    target = await register(auth)
    other = await register(auth)
    updated = await users.UpdateUser(
        pb.UpdateUserRequest(id=target.user.id, name="Grace", role=pb.ROLE_ADMIN), metadata=admin
    )
    assert (updated.name, updated.role, updated.email) == (
        "Grace",
        pb.ROLE_ADMIN,
        target.user.email,
    )
    taken = await rpc_error(
        users.UpdateUser(
            pb.UpdateUserRequest(id=target.user.id, email=other.user.email), metadata=admin
        )
    )
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (
        await users.GetUser(pb.GetUserRequest(id=target.user.id), metadata=admin)
    ).name == "Grace"

    await users.DeleteUser(pb.DeleteUserRequest(id=target.user.id), metadata=admin)
    gone = await rpc_error(users.GetUser(pb.GetUserRequest(id=target.user.id), metadata=admin))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    # Its sessions went with it.
    assert sql("select count(*) from auth.refresh_tokens where user_id = %s", target.user.id) == [
        (0,)
    ]
    dead = await rpc_error(auth.GetMe(pb.GetMeRequest(), metadata=bearer(target.access_token)))
    assert dead.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_bad_ids_are_invalid_argument_not_server_errors(auth, users) -> None:
    admin = bearer((await admin_session(auth)).access_token)
    error = await rpc_error(users.GetUser(pb.GetUserRequest(id="42"), metadata=admin))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and set(violations(error)) == {"id"}
    error = await rpc_error(
        users.ListUsers(pb.ListUsersRequest(page_token="garbage!"), metadata=admin)
    )
    assert set(violations(error)) == {"page_token"}


async def test_the_last_admin_cannot_be_demoted(auth, users, sql) -> None:
    admin = await admin_session(auth)
    others = sql("select id from auth.users where role = 'admin' and email <> %s", ADMIN_EMAIL)
    meta = bearer(admin.access_token)
    for (other,) in others:  # earlier tests may have promoted someone
        await users.DeleteUser(pb.DeleteUserRequest(id=str(other)), metadata=meta)
    error = await rpc_error(
        users.UpdateUser(
            pb.UpdateUserRequest(id=admin.user.id, role=pb.ROLE_CUSTOMER), metadata=meta
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = await rpc_error(users.DeleteUser(pb.DeleteUserRequest(id=admin.user.id), metadata=meta))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


# --- API keys ------------------------------------------------------------------------------


async def test_api_key_is_shown_once_stored_hashed_and_revocable(auth, users, sql) -> None:
    admin = bearer((await admin_session(auth)).access_token)
    created = await auth.CreateApiKey(pb.CreateApiKeyRequest(name="erp sync"), metadata=admin)
    key = created.key
    assert key.startswith(created.api_key.prefix) and len(key) > 40
    [(stored,)] = sql("select key_hash from auth.api_keys where id = %s", created.api_key.id)
    assert key.encode() not in bytes(stored)

    listed = await auth.ListApiKeys(pb.ListApiKeysRequest(), metadata=admin)
    mine = [k for k in listed.api_keys if k.id == created.api_key.id]
    assert mine == [created.api_key]

    with_key = (("x-api-key", key),)
    assert (await users.ListUsers(pb.ListUsersRequest(page_size=1), metadata=with_key)).users
    await auth.DeleteApiKey(pb.DeleteApiKeyRequest(id=created.api_key.id), metadata=admin)
    error = await rpc_error(users.ListUsers(pb.ListUsersRequest(), metadata=with_key))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    again = await rpc_error(
        auth.DeleteApiKey(pb.DeleteApiKeyRequest(id=created.api_key.id), metadata=admin)
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND


async def test_api_key_name_is_validated(auth) -> None:
    admin = bearer((await admin_session(auth)).access_token)
    error = await rpc_error(auth.CreateApiKey(pb.CreateApiKeyRequest(name=""), metadata=admin))
    assert violations(error) == {"name": "is required"}


async def test_jwks_publishes_the_signing_key(auth) -> None:
    jwks = await auth.GetJwks(pb.GetJwksRequest())
    [key] = jwks.keys
    assert (key.kty, key.crv, key.alg, key.use) == ("OKP", "Ed25519", "EdDSA", "sig")
    session = await register(auth)
    import jwt

    assert jwt.get_unverified_header(session.access_token)["kid"] == key.kid


async def test_registration_event_reaches_nats_with_the_callers_trace(auth, stack) -> None:
    """The outbox relays UserRegistered to JetStream with Nats-Msg-Id = event id and the W3C
    trace context of the request that caused it."""
    import nats
    from ecommerce.events.v1 import events_pb2
    from nats.js.api import DeliverPolicy

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    email = unique_email("traced")
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            "ecom.auth.user_registered", deliver_policy=DeliverPolicy.NEW, ordered_consumer=True
        )
        await auth.Register(
            pb.RegisterRequest(email=email, password=PASSWORD, name="Tracy"),
            metadata=(("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),),
        )
        while True:
            message = await sub.next_msg(timeout=10)
            event = events_pb2.UserRegistered.FromString(message.data)
            if event.email == email:
                break
        assert message.headers["Nats-Msg-Id"] == event.event_id
        assert message.headers["traceparent"].split("-")[1] == trace_id
    finally:
        await nc.close()


async def test_housekeeping_deletes_long_expired_tokens_only(auth, stack, sql) -> None:
    from auth_service.config import AuthSettings
    from auth_service.server import build_parts, token_signer

    old = await register(auth)
    fresh = await register(auth)
    sql(
        "update auth.refresh_tokens set expires_at = now() - interval '2 days' where user_id = %s",
        old.user.id,
    )
    settings = AuthSettings(
        database_url=stack.database_url, auth_jwt_private_key_file=str(stack.jwt_key_file)
    )
    parts = build_parts(settings, token_signer(settings), pool_size=1)
    try:
        assert await parts.sessions.purge_expired() >= 1
    finally:
        await parts.db.dispose()
    count = "select count(*) from auth.refresh_tokens where user_id = %s"
    assert sql(count, old.user.id) == [(0,)]
    assert sql(count, fresh.user.id) == [(1,)]
