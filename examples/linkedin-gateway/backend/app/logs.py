"""Logging to the logs folder (a volume in prod, the mounted tree in dev) and to stderr."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler

from app.settings import Settings


def configure_logging(settings: Settings) -> logging.Logger:
    logger = logging.getLogger("gateway")
    logger.setLevel(settings.log_level)
    if not logger.handlers:
        try:
            settings.log_dir.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = RotatingFileHandler(
                settings.log_dir / "gateway.log", maxBytes=5_000_000, backupCount=3
            )
        except OSError:
            # A read-only tree with no logs volume: keep serving, log to stderr only.
            handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
    return logger
