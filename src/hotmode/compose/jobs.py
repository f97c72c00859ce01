"""The declared jobs (`[jobs.NAME]`, a migration) as Compose services the app waits for.

A job is the app's own service with another command: the same image (never pulled: the app's
build makes it), environment, env files, secrets and mounts in each mode x edition, but no
ports, no health check and no restart. The app depends on it with
`condition: service_completed_successfully`, so Compose starts the app only once every job has
exited 0, in every mode.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hotmode.compose.companions import URL_SECRETS_VARIABLE, launch
from hotmode.config import Config

# What a job does not take from the app's service: its name, its address, its liveness.
_APP_ONLY = {"build", "container_name", "ports", "healthcheck", "restart", "labels", "command"}


def job_services(config: Config, app: Mapping[str, Any], *, whole: bool) -> dict[str, Any]:
    """Each job as a service derived from `app` (a whole service, or a mode's overlay of it)."""
    services = {}
    for job in config.jobs:
        # Copies, not the app's own objects: the YAML shows each service whole, no anchors.
        service = {k: copy.deepcopy(v) for k, v in app.items() if k not in _APP_ONLY}
        if "command" in app:
            secrets = str((app.get("environment") or {}).get(URL_SECRETS_VARIABLE, ""))
            service["command"] = launch(list(job.command), secrets)
        if whole:
            service["pull_policy"] = "never"
            service["restart"] = "no"
        services[job.name] = service
    return services


def waits_for_jobs(config: Config) -> dict[str, dict[str, str]]:
    """The app's `depends_on` entries: every job, finished with exit 0."""
    return {job.name: {"condition": "service_completed_successfully"} for job in config.jobs}


def job_names(services: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The services another waits for to finish with exit 0: the declared jobs, as a merged
    prod configuration (or a stack built from it) shows them."""
    return {
        str(name)
        for service in services.values()
        for name, needs in (service.get("depends_on") or {}).items()
        if isinstance(needs, dict) and needs.get("condition") == "service_completed_successfully"
    }
