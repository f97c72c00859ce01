"""Settings read once from the environment: edition, mode, reload, revision, logs folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

EDITIONS = ("core", "saas")


@dataclass(frozen=True)
class Settings:
    edition: str
    mode: str
    reload: bool
    revision: str
    log_dir: Path
    log_level: str
    debug: bool


def load_settings() -> Settings:
    edition = os.environ.get("LG_BACKEND_EDITION", "core")
    if edition not in EDITIONS:
        raise RuntimeError(f"LG_BACKEND_EDITION={edition!r}; expected one of {EDITIONS}")
    mode = os.environ.get("HOTMODE_MODE", "prod")
    reload = os.environ.get("HOTMODE_RELOAD", os.environ.get("HOT_RELOAD_ENABLED", "false"))
    log_dir = Path(os.environ.get("LOG_DIR", Path(__file__).resolve().parent.parent / "logs"))
    return Settings(
        edition=edition,
        mode=mode,
        reload=reload.lower() in ("1", "true", "yes"),
        revision=os.environ.get("HOTMODE_REVISION", "unknown"),
        log_dir=log_dir,
        log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        debug=os.environ.get("DEBUG", "false").lower() == "true",
    )
