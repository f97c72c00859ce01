"""Which uvicorn the connection handover runs on, and the one line said when it cannot.

The handover (handover.py) uses uvicorn's h11 protocol from the inside: its connection, its
request cycle, its keep-alive timer, the arguments its constructor takes. The range below is the
one the reload and handover suites run against (the oldest and the newest, see noxfile.py).
Older than the range, workers use uvicorn's own shutdown instead (keep-alive connections are
closed at each reload, as with `uvicorn --reload`), and hotmode says so at start. Newer than the
newest tested, the handover is kept if the internals it uses are all there.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

OLDEST = "0.22.0"  # the first with timeout_graceful_shutdown and the lifespan state
NEWEST_TESTED = "0.55.0"


def parse(version: str) -> tuple[int, ...]:
    """`0.30.6` -> (0, 30, 6); a suffix (`.post1`, `rc1`) is ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def installed_version() -> str:
    """uvicorn's `__version__`, read from its source: importing it (or importlib.metadata)
    would cost the supervisor, which never serves, a few megabytes."""
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or spec.origin is None:
        return "0"
    for name in ("_version.py", "__init__.py"):  # where newer ones keep it, then older ones
        path = Path(spec.origin).with_name(name)
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        match = re.search(
            r"^__version__\b[^=\n]*=(?:\s*\w+\s*=)?\s*[\"']([^\"']+)[\"']", text, re.M
        )
        if match:
            return match.group(1)
    from importlib import metadata  # a layout not seen yet

    return metadata.version("uvicorn")


def missing_internals() -> list[str]:
    """What the handover needs of uvicorn's internals and this uvicorn lacks."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

    missing = []
    wanted = ("_unset_keepalive_if_required", "timeout_keep_alive_handler", "data_received")
    missing += [f"H11Protocol.{name}" for name in wanted if not hasattr(H11Protocol, name)]
    if "app_state" not in inspect.signature(H11Protocol.__init__).parameters:
        missing.append("H11Protocol(app_state=)")
    if "message_event" not in inspect.signature(RequestResponseCycle.__init__).parameters:
        missing.append("RequestResponseCycle(message_event=)")
    if "timeout_graceful_shutdown" not in inspect.signature(uvicorn.Config.__init__).parameters:
        missing.append("Config(timeout_graceful_shutdown=)")
    return missing


def handover_problem(version: str | None = None) -> str | None:
    """None when connections can be handed over with this uvicorn; else the one line to say."""
    if version is None:
        version = installed_version()
    if parse(version) < parse(OLDEST):
        return (
            f"uvicorn {version} is older than {OLDEST}, the oldest hotmode hands connections "
            "over with: reloads close keep-alive connections (uvicorn's own shutdown); "
            f"install uvicorn>={OLDEST} for reloads clients do not see"
        )
    if parse(version) > parse(NEWEST_TESTED):
        missing = missing_internals()
        if missing:
            return (
                f"uvicorn {version} lacks {', '.join(missing)}, which hotmode hands connections "
                f"over with (tested up to {NEWEST_TESTED}): reloads close keep-alive "
                f"connections (uvicorn's own shutdown); install uvicorn<={NEWEST_TESTED}"
            )
    return None
