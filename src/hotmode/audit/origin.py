"""Which repository a project's files come from, and whether an image is that repository's own.

An app that runs `owner/project` from the repository `owner/project` runs the project's own
code: that is evidence it is the app, where a pulled image is otherwise weak. The repository is
named by git (`remote.origin.url` of the folder's checkout), else by a provenance note kept beside
files copied out of their repository (`SOURCE.txt` with a `repo: URL` line), looked for in the
folder and a few above it.
"""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache
from pathlib import Path

_URL = re.compile(r"(?:[:/])([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")
_NOTE = re.compile(r"^repo:\s*(\S+)", re.MULTILINE)
_LEVELS = 3
_AFFIX = re.compile(r"^(docker|compose|deploy)[-_.]|[-_.](docker|compose|deploy|deployment)$")


def _owner_name(url: str) -> str | None:
    found = _URL.search(url.strip())
    return f"{found.group(1)}/{found.group(2)}".lower() if found else None


@lru_cache(maxsize=64)
def repository(folder: Path) -> str | None:
    """`owner/name` of the repository `folder` belongs to, if anything says."""
    try:
        result = subprocess.run(  # noqa: S603 - a fixed command reading a checkout's config
            ["git", "-C", str(folder), "config", "--get", "remote.origin.url"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip():
            return _owner_name(result.stdout)
    except (OSError, subprocess.TimeoutExpired):
        pass
    for place in [folder, *folder.parents][: _LEVELS + 1]:
        note = place / "SOURCE.txt"
        try:
            text = note.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            continue
        found = _NOTE.search(text)
        if found:
            return _owner_name(found.group(1))
    return None


def own_image(image: str | None, repository: str | None) -> bool:
    """Whether an image reference names the repository's own image (`ghcr.io/owner/name:tag`,
    `owner/name`), its owner and name as the repository's."""
    if not image or not repository:
        return False
    path = image.split("@", 1)[0]
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path = path[: len(path) - len(last)] + last.split(":", 1)[0]
    parts = path.lower().split("/")
    if len(parts) < 2:
        return False
    owner, name = repository.split("/", 1)
    # A repository that deploys its project's image is often named for it: `searxng-docker`,
    # `docker-zulip`, `shop-compose` ship `searxng`, `zulip`, `shop`.
    names = {name, _AFFIX.sub("", name)}
    return parts[-2] == owner and parts[-1] in names
