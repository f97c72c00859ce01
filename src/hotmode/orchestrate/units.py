"""Compose's durations and resource sizes, read once for every orchestrator that needs them.

Swarm and Kubernetes both take a Compose file's `1m30s` and `512M`; the parsing lives here, below
both, so neither imports the other for it.
"""

from __future__ import annotations

import re
from typing import Any

from hotmode.errors import UsageError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def duration_seconds(value: Any) -> float:
    """A Compose duration (`1m30s`, `500ms`, or a number of seconds) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise UsageError(f"{value!r} is not a duration (e.g. 10s, 1m30s)")
    return sum(float(amount) * _UNITS[unit] for amount, unit in parts)


def memory_quantity(value: Any) -> str:
    """Compose memory (bytes, or `512M`) as a Kubernetes quantity (`512Mi`)."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+)([bkmg]?)b?", text)
    if match is None:
        raise UsageError(f"memory {value!r} is not a size (e.g. 512M)")
    factor = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2)]
    size = int(match.group(1)) * factor
    for unit, scale in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def cpu_quantity(value: Any) -> str:
    """Compose cpus (`1.0`, `0.5`) as a Kubernetes quantity (`1`, `500m`)."""
    millis = round(float(value) * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
