"""Routes that only the saas edition serves."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/saas")

PLANS = ("starter", "team", "business")


@router.get("/plans")
async def plans() -> dict[str, list[str]]:
    return {"plans": list(PLANS)}
