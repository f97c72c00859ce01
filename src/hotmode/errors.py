"""The one small tree of exceptions the library raises; the CLI maps them to exit codes."""

from __future__ import annotations


class HotmodeError(Exception):
    """Base of every error hotmode reports to a user as one line."""

    exit_code = 3


class UsageError(HotmodeError):
    """A command was asked for something it cannot do as given (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """The declaration, an env file or a mode choice is wrong (exit 2)."""


class LinkError(UsageError):
    """A symbolic link, or a folder that others can change, where hotmode keeps its own file or
    folder: never followed, never written or deleted through (exit 2)."""


class ComposeError(UsageError):
    """Compose is missing, or rejected a configuration (exit 2)."""


class StateError(HotmodeError):
    """A mode cannot start or stop as asked: port held, nothing running (exit 1)."""

    exit_code = 1


class AuditFailed(HotmodeError):
    """A check found problems at or above the threshold (exit 1)."""

    exit_code = 1


class Interrupted(HotmodeError):
    """A signal (Ctrl-C, SIGTERM, a closed terminal) stopped a command: exit 128 + signal."""

    def __init__(self, signum: int, message: str = "") -> None:
        import signal

        name = signal.Signals(signum).name
        super().__init__(message or f"interrupted by {name}")
        self.signum = signum
        self.exit_code = 128 + signum
