"""Live endpoints: the browser extension's WebSocket, an event stream, and a POST echo.

Each answer carries the greeting of `app.routes`, so a client can tell which code served it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from app import __version__, routes

router = APIRouter()

EVENT_PERIOD = 0.5  # seconds between two events of the stream


def _greeting() -> dict[str, str]:
    return {"name": routes.GREETING, "version": __version__}


@router.websocket("/ws")
async def websocket(socket: WebSocket) -> None:
    """Greets with the code's greeting, then echoes each text message."""
    await socket.accept()
    await socket.send_json({"hello": _greeting()})
    try:
        while True:
            text = await socket.receive_text()
            await socket.send_json({"echo": text, **_greeting()})
    except WebSocketDisconnect:
        return


@router.get("/api/v1/events")
async def events() -> StreamingResponse:
    """Server-sent events: the greeting, every EVENT_PERIOD seconds, until the client leaves."""

    async def stream() -> AsyncIterator[str]:
        count = 0
        while True:
            count += 1
            yield f"id: {count}\ndata: {json.dumps(_greeting())}\n\n"
            await asyncio.sleep(EVENT_PERIOD)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.post("/api/v1/echo")
async def echo(payload: Any = Body(None)) -> dict[str, Any]:  # noqa: B008 -- FastAPI's idiom
    """The JSON body sent, and the greeting of the code that answered."""
    return {"echo": payload, **_greeting()}
