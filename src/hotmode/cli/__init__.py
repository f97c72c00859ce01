"""The `hotmode` command line: a thin, lazily loaded click group.

Each command lives in its own module and is imported only when it runs, so `hotmode --help` and
`hotmode status` start fast. Library errors are mapped to exit codes in one place, `main`.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from hotmode import __version__

# name -> (module, attribute, one-line help). The help is here so that `--help` imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("hotmode.cli.lifecycle", "up", "Start a mode (Docker if reachable, else native)."),
    "down": ("hotmode.cli.lifecycle", "down", "Stop the running mode."),
    "switch": ("hotmode.cli.lifecycle", "switch", "Stop the running mode and start another."),
    "status": ("hotmode.cli.lifecycle", "status", "Show every mode x edition, and which runs."),
    "logs": ("hotmode.cli.logs", "logs", "Follow the running mode's logs."),
    "exec": ("hotmode.cli.execute", "execute", "Run a command in the running mode's environment."),
    "init": ("hotmode.cli.init", "init", "Write hotmode.toml, inferred from the project."),
    "render": (
        "hotmode.cli.compose",
        "render",
        "Write the deployment folder from the declaration.",
    ),
    "config": ("hotmode.cli.compose", "config", "Print a mode's merged Compose configuration."),
    "files": ("hotmode.cli.compose", "files", "Print a mode's Compose `-f` list."),
    "env": ("hotmode.cli.compose", "env", "Print COMPOSE_FILE and COMPOSE_PROJECT_NAME to eval."),
    "run": (
        "hotmode.cli.run",
        "run",
        "Serve an ASGI or WSGI app (FastAPI, Flask, Django...), with the fast hot reload.",
    ),
    "check": ("hotmode.cli.check", "check", "Lint each mode's merged configuration."),
    "verify": ("hotmode.cli.verify", "verify", "Prove the running prod container is the commit."),
    "deploy": ("hotmode.cli.deploy", "deploy", "Deploy prod to Docker Swarm (--swarm)."),
    "requirements": (
        "hotmode.cli.requirements",
        "requirements",
        "Print or install the dependencies a pyproject.toml and its lock pin.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, _ = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return None
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, entry[2]) for name, entry in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hotmode")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (or HOTMODE_DEBUG=1).")
def cli(debug: bool) -> None:
    """hotmode: one declaration, every mode x edition, checked and fast.

    The mode comes from --dev/--prod, then HOTMODE_MODE, then HOT_RELOAD_ENABLED, then the same
    variables in the deployment .env, then the declaration, then prod.
    """
    # `main` reads --debug from argv itself: an error may come before click has parsed it.
    del debug


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    from hotmode.errors import HotmodeError

    given = argv if argv is not None else sys.argv[1:]
    debug = "--debug" in given or bool(os.environ.get("HOTMODE_DEBUG"))
    try:
        result = cli.main(args=argv, prog_name="hotmode", standalone_mode=False)
    except HotmodeError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "hotmode"
        _error(f"{exc.format_message().rstrip('.')}; see `{command} --help`")
        return 2
    except click.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # The file system or the network said no: the user's to fix, not a bug (exit 2).
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}; check the path, its permissions and free space")
        return 2
    except Exception as exc:
        if debug:
            raise
        _error(f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)")
        return 3
    return result if isinstance(result, int) else 0


def _error(message: str) -> None:
    # One line, always: a value quoted from a user's file may itself hold a line break.
    click.echo(f"hotmode: error: {' '.join(message.splitlines())}", err=True)
