"""The gateway's database: SQLAlchemy 2 (async), PostgreSQL through asyncpg, or embedded SQLite.

`DATABASE_URL` names the database (hotmode sets it from the declaration in every mode); the
password is never in it but in the file `DATABASE_PASSWORD_FILE` names (a Compose secret). With no
`DATABASE_URL`, the gateway uses its embedded SQLite file (aiosqlite) behind the same code, and
says so in one line at start: never a silent fallback. The engine is made in the lifespan, in the
serving process, so that a forked worker never shares a connection with its parent.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.models import Base

PING_TIMEOUT = 2.0


def default_data_dir() -> Path:
    home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(home) / "linkedin-gateway"


def database_url() -> tuple[URL, bool]:
    """The URL to connect to, and whether it is the embedded default."""
    text = os.environ.get("DATABASE_URL", "").strip()
    if not text:
        folder = Path(os.environ.get("GATEWAY_DATA_DIR") or default_data_dir())
        return make_url(f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"), True
    url = make_url(text)
    password_file = os.environ.get("DATABASE_PASSWORD_FILE", "").strip()
    if password_file and Path(password_file).is_file():
        url = url.set(password=Path(password_file).read_text(encoding="utf-8").strip())
    return url, False


def describe(url: URL, embedded: bool) -> str:
    """One line on which database this is, without its password."""
    if url.get_backend_name() == "sqlite":
        how = "the embedded default: DATABASE_URL is not set" if embedded else "DATABASE_URL"
        return f"SQLite at {url.database} ({how})"
    return f"PostgreSQL at {url.host}:{url.port or 5432}/{url.database} as {url.username}"


@dataclass
class Database:
    """The engine and its sessions, for the life of one serving process."""

    engine: AsyncEngine
    sessions: async_sessionmaker
    backend: str
    summary: str

    async def reachable(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT), self.engine.connect() as connection:
                await connection.execute(select(1))
        except Exception:  # noqa: BLE001 - any failure means "not reachable", said as such
            return False
        return True

    async def ensure_schema(self) -> None:
        """Create missing tables (the init scripts create them on PostgreSQL; SQLite has none)."""
        async with asyncio.timeout(PING_TIMEOUT * 5), self.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()


def open_database() -> Database:
    url, embedded = database_url()
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, pool_pre_ping=True)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    return Database(engine, sessions, url.get_backend_name(), describe(url, embedded))
