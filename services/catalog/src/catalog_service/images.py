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
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from ecom_runtime.errors import InvalidArgument, NotFound
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog_service.config import CatalogSettings
from catalog_service.products import MAX_IMAGES
from catalog_service.store import pending_images, products

log = logging.getLogger("catalog.images")

CONTENT_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
UPLOAD_SECONDS = 15 * 60

Announce = Callable[[AsyncConnection, Sequence[uuid.UUID]], Awaitable[None]]


class Images:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: CatalogSettings,
        *,
        announce: Announce,
        after_commit: Callable[[], Awaitable[None]],
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._announce = announce
        self._after_commit = after_commit
        self._s3 = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region,
            config=Config(signature_version="s3v4", retries={"max_attempts": 2}),
        )
        endpoint = settings.s3_endpoint_url or f"https://s3.{settings.s3_region}.amazonaws.com"
        self._base_url = (
            settings.catalog_image_base_url or f"{endpoint.rstrip('/')}/{settings.s3_bucket}"
        ).rstrip("/")

    async def ensure_bucket(self) -> None:
        """Creates the bucket, publicly readable, when missing (the local stack).

        Production buckets are made by the platform team (often behind a CDN); this never
        changes an existing bucket. S3 being unreachable must not stop the catalog starting.
        """
        bucket = self._settings.s3_bucket
        try:
            await asyncio.to_thread(self._s3.head_bucket, Bucket=bucket)
            return
        except ClientError:
            pass
        except Exception as error:  # endpoint down: uploads fail until it is back
            log.warning("S3 unreachable, image uploads will fail: %s", error)
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
        await asyncio.to_thread(self._s3.create_bucket, Bucket=bucket)
        await asyncio.to_thread(
            self._s3.put_bucket_policy, Bucket=bucket, Policy=json.dumps(public_read)
        )

    async def create_upload(self, product_id: uuid.UUID, content_type: str) -> tuple[str, str]:
        """(upload_url, image_url) for one image of the product."""
        if content_type not in CONTENT_TYPES:
            raise InvalidArgument({"content_type": f"must be one of {', '.join(CONTENT_TYPES)}"})
        key = f"products/{product_id}/{uuid.uuid4().hex}.{CONTENT_TYPES[content_type]}"
        image_url = f"{self._base_url}/{key}"
        async with self._engine.begin() as conn:
            live = await conn.execute(
                select(products.c.id).where(
                    products.c.id == product_id, products.c.deleted_at.is_(None)
                )
            )
            if live.first() is None:
                raise NotFound("product not found")
            await conn.execute(
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
        async with self._engine.begin() as conn:
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
                await self._announce(conn, changed)
        if changed:
            await self._after_commit()
        return attached

    async def run_checker(self) -> None:
        while True:
            await self.attach_uploaded()
            await asyncio.sleep(self._settings.catalog_image_check_seconds)
