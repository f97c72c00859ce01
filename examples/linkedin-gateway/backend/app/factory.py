"""Building the FastAPI app for the edition in the environment."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__, api_keys, routes, saas
from app.db import open_database
from app.live import router as live_router
from app.logs import configure_logging
from app.settings import load_settings


def create_app() -> FastAPI:
    settings = load_settings()
    logger = configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "gateway %s starting: edition=%s mode=%s revision=%s",
            __version__, settings.edition, settings.mode, settings.revision,
        )
        app.state.db = database = open_database()
        # One line, on the console too: which database this is, never a silent fallback.
        sys.stderr.write(f"gateway: database {database.summary}\n")
        logger.info("database %s", database.summary)
        try:
            await database.ensure_schema()
        except Exception as exc:  # noqa: BLE001 - served anyway; server-info says unreachable
            sys.stderr.write(f"gateway: database unreachable at start: {exc}\n")
            logger.warning("database unreachable at start: %s", exc)
        yield
        await database.close()
        logger.info("gateway stopping")

    app = FastAPI(title="LinkedIn Gateway", version=__version__, debug=settings.debug,
                  lifespan=lifespan)
    app.state.settings = settings
    app.include_router(routes.router)
    app.include_router(api_keys.router)
    app.include_router(live_router)
    if settings.edition == "saas":
        app.include_router(saas.router)
    return app
