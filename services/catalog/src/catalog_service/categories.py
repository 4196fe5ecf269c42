"""The category tree: any depth, unique slugs, never a cycle."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from ecom_runtime.db import Database
from ecom_runtime.errors import AlreadyExists, InvalidArgument, NotFound
from ecom_runtime.validation import Violations, parse_uuid
from sqlalchemy import Row, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog_service import errors
from catalog_service.cache import CatalogCache
from catalog_service.locks import lock_category_tree
from catalog_service.store import categories

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass
class CategoryNode:
    id: uuid.UUID
    name: str
    slug: str
    parent_id: uuid.UUID | None
    children: list[CategoryNode] = field(default_factory=list)


def check_slug(value: str, violations: Violations) -> str:
    slug = value.strip()
    if not slug:
        violations.add("slug", "is required")
    elif len(slug) > 100 or not SLUG.match(slug):
        violations.add(
            "slug", "must be 1 to 100 of a-z, 0-9 and '-', not starting or ending in '-'"
        )
    return slug


async def descendant_ids(conn: AsyncConnection, root: uuid.UUID) -> tuple[uuid.UUID, ...]:
    """The category and every category below it (empty if it does not exist)."""
    tree = select(categories.c.id).where(categories.c.id == root).cte("tree", recursive=True)
    tree = tree.union_all(select(categories.c.id).where(categories.c.parent_id == tree.c.id))
    return tuple((await conn.execute(select(tree.c.id))).scalars())


async def ancestor_ids(conn: AsyncConnection, category_id: uuid.UUID | None) -> list[uuid.UUID]:
    """Parents of a category up to the root, nearest first (for search's category filter)."""
    if category_id is None:
        return []
    up = (
        select(categories.c.parent_id.label("id"), literal(1).label("depth"))
        .where(categories.c.id == category_id)
        .cte("up", recursive=True)
    )
    up = up.union_all(
        select(categories.c.parent_id, up.c.depth + 1).where(categories.c.id == up.c.id)
    )
    rows = await conn.execute(select(up.c.id).where(up.c.id.is_not(None)).order_by(up.c.depth))
    return list(rows.scalars())


class Categories:
    def __init__(self, db: Database, cache: CatalogCache) -> None:
        self._db = db
        self._cache = cache

    async def tree(self) -> list[CategoryNode]:
        """The whole tree from one query, assembled in memory."""
        async with self._db.connect() as conn:
            rows = (await conn.execute(select(categories).order_by(categories.c.name))).all()
        nodes = {r.id: CategoryNode(r.id, r.name, r.slug, r.parent_id) for r in rows}
        roots: list[CategoryNode] = []
        for node in nodes.values():
            parent = nodes.get(node.parent_id) if node.parent_id else None
            (parent.children if parent else roots).append(node)
        return roots

    async def names(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not ids:
            return {}
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(categories.c.id, categories.c.name).where(categories.c.id.in_(ids))
            )
        return {row.id: row.name for row in rows}

    async def get(self, category_id: uuid.UUID) -> Row[Any]:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(select(categories).where(categories.c.id == category_id))
            ).first()
        if row is None:
            raise NotFound("category not found")
        return row

    async def create(self, name: str, slug: str, parent_id: str) -> Row[Any]:
        violations = Violations()
        violations.check_length("name", name, 1, 100)
        slug = check_slug(slug, violations)
        parent = parse_uuid("parent_id", parent_id) if parent_id else None
        violations.raise_if_any()
        try:
            async with self._db.begin() as tx:
                if parent is not None:
                    await self._require_parent(tx.conn, parent)
                tx.on_commit(self._cache.invalidate)
                return (
                    await tx.conn.execute(
                        insert(categories)
                        .values(id=uuid.uuid4(), name=name.strip(), slug=slug, parent_id=parent)
                        .returning(*categories.c)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists(
                {"slug": "is already used by another category"}, reason=errors.SLUG_TAKEN
            ) from None

    async def update(
        self, category_id: uuid.UUID, name: str | None, slug: str | None, parent_id: str | None
    ) -> Row[Any]:
        violations = Violations()
        changes: dict[str, Any] = {}
        if name is not None:
            violations.check_length("name", name, 1, 100)
            changes["name"] = name.strip()
        if slug is not None:
            changes["slug"] = check_slug(slug, violations)
        if parent_id is not None:
            changes["parent_id"] = parse_uuid("parent_id", parent_id) if parent_id else None
        violations.raise_if_any()
        try:
            async with self._db.begin() as tx:
                conn = tx.conn
                await lock_category_tree(conn)
                current = (
                    await conn.execute(
                        select(categories).where(categories.c.id == category_id).with_for_update()
                    )
                ).first()
                if current is None:
                    raise NotFound("category not found")
                new_parent = changes.get("parent_id")
                if new_parent is not None:
                    await self._require_parent(conn, new_parent)
                    if new_parent in await descendant_ids(conn, category_id):
                        raise InvalidArgument(
                            {"parent_id": "cannot be the category or one of its descendants"},
                            reason=errors.CATEGORY_CYCLE,
                        )
                if not changes:
                    return current
                tx.on_commit(self._cache.invalidate)
                return (
                    await conn.execute(
                        update(categories)
                        .where(categories.c.id == category_id)
                        .values(**changes, updated_at=func.now())
                        .returning(*categories.c)
                    )
                ).one()
        except IntegrityError:
            raise AlreadyExists(
                {"slug": "is already used by another category"}, reason=errors.SLUG_TAKEN
            ) from None

    async def _require_parent(self, conn: AsyncConnection, parent: uuid.UUID) -> None:
        found = await conn.execute(select(categories.c.id).where(categories.c.id == parent))
        if found.first() is None:
            raise InvalidArgument({"parent_id": "no such category"})
