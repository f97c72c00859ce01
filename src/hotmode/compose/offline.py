"""What to say when an engine cannot pull the base image (offline, no registry): the setting
that gives a local one (`base_image` in the declaration, `BASE_IMAGE` in the deployment's
`.env`)."""

from __future__ import annotations

import re

from hotmode.config import Config

# What BuildKit and the engine say when an image cannot be fetched (offline, no registry).
_PULL_FAILED = re.compile(
    r"failed to resolve source metadata|pull access denied|failed to do request|no such host|"
    r"manifest unknown|i/o timeout|TLS handshake timeout|connection refused|"
    r"failed to fetch oauth token|dial tcp",
    re.IGNORECASE,
)


def pull_hint(message: str, config: Config) -> str:
    """'; ...' naming the setting that gives a local base image, when the build failed on a
    pull; '' otherwise."""
    if not _PULL_FAILED.search(message):
        return ""
    env = config.deployment.relative_to(config.root) / ".env"
    return (
        f"; the base image {config.base_image} could not be pulled: set base_image in "
        f"{config.path.name} (or BASE_IMAGE in {env}) to an image this engine has, e.g. one "
        "built locally"
    )
