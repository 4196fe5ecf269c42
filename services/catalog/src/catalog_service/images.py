"""Product images: a presigned S3 PUT per upload; the image joins the product once it is there.

A presigned PUT cannot carry a size limit (only POST policies can), so the limit is enforced
after the upload: a checker looks at each pending upload, attaches a valid image to its
product, and deletes an object that is too large or not the declared image type.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from ecom_runtime.db import Database
from ecom_runtime.errors import InvalidArgument, NotFound
from sqlalchemy import delete, func, insert, select, update

from catalog_service.cache import CatalogCache
from catalog_service.config import CatalogSettings
from catalog_service.events import announce_changed
from catalog_service.products import MAX_IMAGES
from catalog_service.store import pending_images, products

log = logging.getLogger("catalog.images")

CONTENT_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
UPLOAD_SECONDS = 15 * 60


class Images:
    def __init__(self, db: Database, settings: CatalogSettings, cache: CatalogCache) -> None:
        self._db = db
        self._settings = settings
        self._cache = cache
        self._s3 = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region,
            config=Config(
                signature_version="s3v4",
                retries={"max_attempts": 2},
                # A hung S3 must not hang a request, the image checker or the start for long.
                connect_timeout=3,
                read_timeout=5,
            ),
        )
        endpoint = settings.s3_endpoint_url or f"https://s3.{settings.s3_region}.amazonaws.com"
        self._base_url = (
            settings.catalog_image_base_url or f"{endpoint.rstrip('/')}/{settings.s3_bucket}"
        ).rstrip("/")

    async def ensure_bucket(self) -> None:
        """Creates the bucket, publicly readable, when S3 says it does not exist (local stack).

        Production buckets are made by the platform team (often behind a CDN); this never
        changes an existing bucket: a HEAD refused for any other reason than "no such bucket"
        (403: it exists but we may not look), a create that finds the bucket there already, a
        bucket that already has a policy, all leave it as it is. S3 being unreachable must not
        stop the catalog starting.
        """
        bucket = self._settings.s3_bucket
        try:
            await asyncio.to_thread(self._s3.head_bucket, Bucket=bucket)
            return
        except ClientError as error:
            # A HEAD has no body: the status is all there is ("404"); some stores say more.
            missing = error.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket") or (
                error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
            )
            if not missing:
                log.warning("S3 bucket %s not checked, left as it is: %s", bucket, error)
                return
        except Exception as error:  # endpoint down: uploads fail until it is back
            log.warning("S3 unreachable, image uploads will fail: %s", error)
            return
        region = self._settings.s3_region
        where = {} if region == "us-east-1" else {"LocationConstraint": region}
        try:
            await asyncio.to_thread(
                self._s3.create_bucket,
                Bucket=bucket,
                **({"CreateBucketConfiguration": where} if where else {}),
            )
            # us-east-1 answers 200 to a create of a bucket we own already (another replica
            # made it since our HEAD): a bucket with a policy is someone's, keep theirs.
            await asyncio.to_thread(self._s3.get_bucket_policy, Bucket=bucket)
            log.info("S3 bucket %s has a policy already, left as it is", bucket)
            return
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                log.info("S3 bucket %s exists already, left as it is", bucket)
                return
            if code != "NoSuchBucketPolicy":  # the one answer that lets us go on
                log.warning("S3 bucket %s left as it is, image uploads may fail: %s", bucket, error)
                return
        except BotoCoreError as error:
            log.warning("S3 bucket %s left as it is, image uploads may fail: %s", bucket, error)
            return
        public_read = {
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
        try:
            await asyncio.to_thread(
                self._s3.put_bucket_policy, Bucket=bucket, Policy=json.dumps(public_read)
            )
        except (ClientError, BotoCoreError) as error:
            log.warning("S3 bucket %s created, but not made public: %s", bucket, error)

    async def create_upload(self, product_id: uuid.UUID, content_type: str) -> tuple[str, str]:
        """(upload_url, image_url) for one image of the product."""
        if content_type not in CONTENT_TYPES:
            raise InvalidArgument({"content_type": f"must be one of {', '.join(CONTENT_TYPES)}"})
        key = f"products/{product_id}/{uuid.uuid4().hex}.{CONTENT_TYPES[content_type]}"
        image_url = f"{self._base_url}/{key}"
        async with self._db.begin() as tx:
            live = await tx.conn.execute(
                select(products.c.id).where(
                    products.c.id == product_id, products.c.deleted_at.is_(None)
                )
            )
            if live.first() is None:
                raise NotFound("product not found")
            await tx.conn.execute(
                insert(pending_images).values(
                    id=uuid.uuid4(),
                    product_id=product_id,
                    object_key=key,
                    image_url=image_url,
                    expires_at=datetime.now(UTC) + timedelta(seconds=UPLOAD_SECONDS + 60),
                )
            )
        # Signing is local computation, no network: fine on the event loop.
        upload_url = self._s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._settings.s3_bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=UPLOAD_SECONDS,
        )
        return upload_url, image_url

    async def _inspect(self, key: str) -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(
                self._s3.head_object, Bucket=self._settings.s3_bucket, Key=key
            )
        except ClientError:
            return None

    async def attach_uploaded(self) -> int:
        """One pass over pending uploads; returns how many images were attached."""
        attached = 0
        async with self._db.begin() as tx:
            conn = tx.conn
            pending = (
                await conn.execute(
                    select(pending_images)
                    .order_by(pending_images.c.created_at)
                    .limit(50)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            changed: list[uuid.UUID] = []
            for upload in pending:
                head = await self._inspect(upload.object_key)
                if head is None:
                    if upload.expires_at < datetime.now(UTC):
                        await conn.execute(
                            delete(pending_images).where(pending_images.c.id == upload.id)
                        )
                    continue
                ok = (
                    head.get("ContentLength", 0) <= self._settings.catalog_image_max_bytes
                    and head.get("ContentType") in CONTENT_TYPES
                )
                if ok:
                    done = await conn.execute(
                        update(products)
                        .where(
                            products.c.id == upload.product_id,
                            products.c.deleted_at.is_(None),
                            func.cardinality(products.c.image_urls) < MAX_IMAGES,
                        )
                        .values(
                            image_urls=func.array_append(products.c.image_urls, upload.image_url),
                            version=products.c.version + 1,
                            updated_at=func.now(),
                        )
                        .returning(products.c.id)
                    )
                    if done.first() is not None:
                        changed.append(upload.product_id)
                        attached += 1
                        ok = True
                    else:
                        ok = False  # product gone or full: the object is not needed
                if not ok:
                    log.info("discarding upload %s", upload.object_key)
                    await asyncio.to_thread(
                        self._s3.delete_object,
                        Bucket=self._settings.s3_bucket,
                        Key=upload.object_key,
                    )
                await conn.execute(delete(pending_images).where(pending_images.c.id == upload.id))
            if changed:
                await announce_changed(tx, changed)
                tx.on_commit(self._cache.invalidate)
        return attached
