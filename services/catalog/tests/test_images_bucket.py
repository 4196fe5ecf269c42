"""The image bucket check creates a missing bucket and never touches an existing one.

Against the stack's S3 stand-in (moto). moto answers like S3 for a missing bucket (404), for a
create of an existing bucket (200 in us-east-1, BucketAlreadyOwnedByYou elsewhere) and for a
bucket without a policy; it cannot be made to refuse a HEAD with 403 (it checks no
permissions), so that answer is put in front of the real client's HEAD, and everything else
still goes to moto.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from catalog_service.config import CatalogSettings
from catalog_service.images import Images

from conftest import tag


@pytest.fixture
def s3_credentials(stack, monkeypatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, stack.service_env()[name])


def s3(stack, region: str = "us-east-1") -> Any:
    return boto3.client("s3", endpoint_url=stack.s3_url, region_name=region)


def images(stack, bucket: str, region: str = "us-east-1", *, url: str = "") -> Images:
    endpoint = url or stack.s3_url
    settings = CatalogSettings(s3_endpoint_url=endpoint, s3_bucket=bucket, s3_region=region)

    # Only the settings and the S3 client matter here: no database, cache or events.
    unused = {name: None for name in inspect.signature(Images).parameters if name != "settings"}
    return Images(settings=settings, **unused)


def policy(client: Any, bucket: str) -> dict[str, Any] | None:
    try:
        return json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as error:
        assert error.response["Error"]["Code"] == "NoSuchBucketPolicy"
        return None


def public_read(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/products/*",
            }
        ],
    }


def custom(bucket: str) -> dict[str, Any]:
    """A platform team's policy: what ensure_bucket must leave exactly as it is."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"cdn-only-{bucket}",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/cdn"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }


def existing_bucket(client: Any, region: str = "us-east-1") -> str:
    bucket = f"images-{tag()}"
    where = {} if region == "us-east-1" else {"LocationConstraint": region}
    client.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": where} if where else {}))
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(custom(bucket)))
    return bucket


def head_answers(target: Images, status: int) -> list[str]:
    """Makes the client's HEAD answer `status` like S3 does (no body); returns the calls."""
    calls: list[str] = []

    def head_bucket(Bucket: str) -> None:
        calls.append(Bucket)
        raise ClientError(
            {
                "Error": {"Code": str(status), "Message": "Forbidden"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "HeadBucket",
        )

    target._s3.head_bucket = head_bucket
    return calls


async def test_a_missing_bucket_is_created_publicly_readable(stack, s3_credentials) -> None:
    client, bucket = s3(stack), f"images-{tag()}"
    await images(stack, bucket).ensure_bucket()
    client.head_bucket(Bucket=bucket)
    assert policy(client, bucket) == public_read(bucket)


async def test_a_missing_bucket_is_created_outside_us_east_1(stack, s3_credentials) -> None:
    client, bucket = s3(stack, "eu-west-1"), f"images-{tag()}"
    await images(stack, bucket, "eu-west-1").ensure_bucket()
    assert client.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    assert policy(client, bucket) == public_read(bucket)


async def test_an_existing_bucket_keeps_its_exact_policy(stack, s3_credentials) -> None:
    client = s3(stack)
    bucket = existing_bucket(client)
    before = client.get_bucket_policy(Bucket=bucket)["Policy"]
    await images(stack, bucket).ensure_bucket()
    assert client.get_bucket_policy(Bucket=bucket)["Policy"] == before
    assert policy(client, bucket) == custom(bucket)


async def test_an_existing_bucket_without_a_policy_gets_none(stack, s3_credentials) -> None:
    client, bucket = s3(stack), f"images-{tag()}"
    client.create_bucket(Bucket=bucket)
    await images(stack, bucket).ensure_bucket()
    assert policy(client, bucket) is None


@pytest.mark.parametrize("status", [403, 400, 301, 500])
async def test_a_head_refused_for_another_reason_leaves_the_bucket_alone(
    stack, s3_credentials, status: int, caplog
) -> None:
    # A 403 on HEAD: the bucket exists but this role may not look. Creating it (us-east-1
    # answers 200 to our own bucket) and putting a policy would overwrite the real one.
    client = s3(stack)
    bucket = existing_bucket(client)
    target = images(stack, bucket)
    calls = head_answers(target, status)
    with caplog.at_level(logging.WARNING, logger="catalog.images"):
        await target.ensure_bucket()
    assert calls == [bucket]
    assert policy(client, bucket) == custom(bucket)
    assert bucket in caplog.text


async def test_a_head_refused_for_a_bucket_that_is_not_there_creates_nothing(
    stack, s3_credentials
) -> None:
    client, bucket = s3(stack), f"images-{tag()}"
    target = images(stack, bucket)
    head_answers(target, 403)
    await target.ensure_bucket()
    with pytest.raises(ClientError) as caught:
        client.head_bucket(Bucket=bucket)
    assert caught.value.response["Error"]["Code"] == "404"


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
async def test_a_bucket_made_since_the_head_keeps_its_policy(
    stack, s3_credentials, region: str
) -> None:
    # Another replica (or the platform team) made the bucket between our HEAD and our create:
    # eu-west-1 says BucketAlreadyOwnedByYou, us-east-1 says 200, and neither may cost it
    # its policy.
    client = s3(stack, region)
    bucket = existing_bucket(client, region)
    target = images(stack, bucket, region)
    head_answers(target, 404)
    await target.ensure_bucket()
    assert policy(client, bucket) == custom(bucket)


async def test_s3_unreachable_is_logged_not_raised(stack, s3_credentials, caplog) -> None:
    target = images(stack, f"images-{tag()}", url="http://127.0.0.1:9")  # nothing listens
    with caplog.at_level(logging.WARNING, logger="catalog.images"):
        await target.ensure_bucket()
    assert "unreachable" in caplog.text


def test_the_client_has_short_timeouts(stack) -> None:
    config = images(stack, "any")._s3.meta.config
    assert 0 < config.connect_timeout <= 5 and 0 < config.read_timeout <= 10
