"""Rotating the token signing key without signing anyone out: an auth process whose JWKS also
publishes other keys (AUTH_JWT_PUBLISHED_KEYS_FILE) accepts the tokens they signed."""

from __future__ import annotations

import grpc
from auth_service.keys import load_published_keys, public_jwk
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ecommerce.auth.v1 import auth_pb2 as pb
from ecommerce.auth.v1 import auth_pb2_grpc

from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, rpc_error, service_process


def pem(key: Ed25519PrivateKey, public: bool = False) -> str:
    if public:
        data = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return data.decode()


def test_published_keys_may_be_public_or_private_pem_blocks(tmp_path) -> None:
    one, two = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = tmp_path / "published.pem"
    path.write_text(pem(one) + pem(two, public=True))
    keys = load_published_keys(str(path))
    assert [public_jwk(k) for k in keys] == [
        public_jwk(one.public_key()),
        public_jwk(two.public_key()),
    ]
    assert load_published_keys(str(tmp_path / "absent.pem")) == ()


async def test_after_a_rotation_tokens_signed_with_the_previous_key_still_verify(
    stack, auth_channel, tmp_path
) -> None:
    # A token from the stack's auth, signed with the key in use so far.
    old_auth = auth_pb2_grpc.AuthServiceStub(auth_channel)
    session = await old_auth.Login(pb.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    old_token = (("authorization", f"Bearer {session.access_token}"),)

    # The rotated auth: signs with a new key and still publishes the previous one.
    new_key = Ed25519PrivateKey.generate()
    previous = tmp_path / "published.pem"
    previous.write_text(stack.jwt_key_file.read_text())
    async with (
        service_process(
            stack,
            "auth",
            AUTH_JWT_PRIVATE_KEY=pem(new_key),
            AUTH_JWT_PUBLISHED_KEYS_FILE=str(previous),
        ) as (_, address),
        grpc.aio.insecure_channel(address) as channel,
    ):
        new_auth = auth_pb2_grpc.AuthServiceStub(channel)
        jwks = await new_auth.GetJwks(pb.GetJwksRequest())
        old_kid = (await old_auth.GetJwks(pb.GetJwksRequest())).keys[0].kid
        assert [k.kid for k in jwks.keys] == [public_jwk(new_key.public_key())["kid"], old_kid]

        me = await new_auth.GetMe(pb.GetMeRequest(), metadata=old_token)
        assert me.user.email == ADMIN_EMAIL
        fresh = await new_auth.Login(pb.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
        header = fresh.access_token.split(".")[0]
        assert header != session.access_token.split(".")[0]  # another kid: the new key signs

    # Before the rotation, the previous auth does not know the new key: hence publish first.
    error = await rpc_error(
        old_auth.GetMe(
            pb.GetMeRequest(), metadata=(("authorization", f"Bearer {fresh.access_token}"),)
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
