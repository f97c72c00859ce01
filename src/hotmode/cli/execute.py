"""`hotmode exec -- CMD`: one command (a migration, `psql`, a shell) in the running mode's
environment: natively a local process given what the server was given, companions included; in
Docker, `compose exec` in the app's container (or `run --rm` with --new). Either way it runs as a
shell runs it (`hotmode.foreground`): its exit code, signals passed on, Ctrl-C its own."""

from __future__ import annotations

from pathlib import Path

import click

from hotmode import foreground
from hotmode.cli.options import config_option, load
from hotmode.errors import StateError


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@config_option
@click.option("--new", is_flag=True, help="Docker: a new container of the app (compose run).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def execute(config_path: Path | None, new: bool, command: tuple[str, ...]) -> int:
    """Run COMMAND with the running mode's environment; exit with its code."""
    from hotmode.native import runner

    config = load(config_path)
    running = runner.read_state(config)
    if running is not None:
        env, folder = runner.exec_environment(config, running)
        try:
            return foreground.run(list(command), env, folder)
        except FileNotFoundError:
            raise StateError(f"{command[0]}: no such command here; check its name") from None
    from hotmode.compose import companions, docker, layout
    from hotmode.compose.engine import compose_environment, find_compose
    from hotmode.modes import Selection

    found = docker.running(config) if docker.engine_reachable() else None
    if found is None:
        raise StateError("nothing is running; start a mode with `hotmode up`, then exec in it")
    selection = Selection(found.mode, found.edition, "running", "running")
    how = ["run", "--rm", "--no-deps"] if new else ["exec"]
    # A URL's password is put back by the launcher, as for the server itself.
    _, secrets = companions.split_url_secrets(companions.app_environment(config, found.mode))
    argv = find_compose().command(
        layout.compose_files(config, selection),
        found.project,
        *how,
        config.service,
        *companions.launch(list(command), secrets),
    )
    extra = docker.environment(config, selection, allow_dirty=True) if selection.dev else {}
    env = compose_environment(extra)
    return foreground.run(argv, env)
