"""HTTP routes shared by every edition."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app import __version__

router = APIRouter()

GREETING = "LinkedIn Gateway"


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/api/v1/server-info")
async def server_info(request: Request) -> dict[str, object]:
    settings = request.app.state.settings
    return {
        "name": GREETING,
        "version": __version__,
        "edition": settings.edition,
        "mode": settings.mode,
        "reload": settings.reload,
        "revision": settings.revision,
        "database": {
            "backend": request.app.state.db.backend,
            "reachable": await request.app.state.db.reachable(),
        },
    }
