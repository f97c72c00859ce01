"""API keys: create (the key is shown once), list, revoke. Only a hash of each key is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.models import ApiKey

router = APIRouter(prefix="/api/v1/api-keys")


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=100)


def _public(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat() if key.created_at else None,
        "revoked": key.revoked_at is not None,
    }


@router.post("", status_code=201)
async def create(body: NewKey, request: Request) -> dict[str, object]:
    secret = "lg_" + secrets.token_urlsafe(24)
    key = ApiKey(
        name=body.name,
        prefix=secret[:11],
        key_hash=hashlib.sha256(secret.encode()).hexdigest(),
        created_at=datetime.now(UTC),
    )
    async with request.app.state.db.sessions() as session, session.begin():
        session.add(key)
    return {**_public(key), "key": secret}


@router.get("")
async def list_keys(request: Request) -> dict[str, list[dict[str, object]]]:
    async with request.app.state.db.sessions() as session:
        keys = (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()
    return {"keys": [_public(key) for key in keys]}


@router.delete("/{key_id}")
async def revoke(key_id: int, request: Request) -> dict[str, object]:
    async with request.app.state.db.sessions() as session, session.begin():
        key = await session.get(ApiKey, key_id)
        if key is None:
            raise HTTPException(status_code=404, detail=f"no API key {key_id}")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
    return _public(key)
