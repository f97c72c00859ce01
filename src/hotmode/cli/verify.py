"""`hotmode verify`: prove the running prod container is the commit, or list what is not."""

from __future__ import annotations

from pathlib import Path

import click

from hotmode.cli.options import config_option, load, overlay_option
from hotmode.errors import AuditFailed, UsageError


@click.command()
@config_option
@overlay_option
@click.option("--swarm", is_flag=True, help="Verify the Swarm service's running tasks instead.")
@click.option(
    "--stack", "stack_name", default=None, metavar="NAME", help="With --swarm: the stack."
)
@click.option(
    "--node-engine", "node_engines", multiple=True, metavar="NODE=HOST",
    help="With --swarm: the engine of another node (its ID or host name), to read inside its "
    "tasks; e.g. worker-1=ssh://admin@worker-1.",
)  # fmt: skip
def verify(
    config_path: Path | None,
    overlays: tuple[Path, ...],
    swarm: bool,
    stack_name: str | None,
    node_engines: tuple[str, ...],
) -> None:
    """Check the running prod container against the repository; exit 1 listing what differs.

    Image revision = HEAD, source digest = the committed source, the files served = HEAD's, nothing
    mounted over the code, read-only root filesystem, no reload, not root, and the config hash
    = what `docker compose config --hash` gives now.
    """
    from hotmode.compose.verify import verify as run_verify

    config = load(config_path)
    if swarm:
        from hotmode.cli.deploy import swarm_verify

        swarm_verify(config, stack_name, node_engines)
        return
    if node_engines:
        raise UsageError("--node-engine goes with --swarm")
    verdict = run_verify(config, overlays)
    if verdict.problems:
        for problem in verdict.problems:
            click.echo(f"- {problem}")
        where = verdict.running.describe() if verdict.running else config.name
        raise AuditFailed(f"{where} is not the commit: {len(verdict.problems)} problem(s) above")
    assert verdict.running is not None  # noqa: S101 - no problems means a container was checked
    click.echo(
        f"verified: {verdict.running.describe()} serves {verdict.running.revision}, "
        "read-only, non-root, no reload, configuration unchanged"
    )
