"""What a TARGET says, as users write it: `module:app`, `module:create_app` (a factory, with
`--factory`), `module:create_app()` and `module:create_app("dev", debug=True)` (a factory called
with literal arguments, as Flask takes them), `package.module:object.attribute`.

Read without importing anything: the declaration, `init` and the reload engine all go through
`parse_target`, and only the engine's worker imports the module (hotmode.reload.apps).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

_PART = re.compile(r"^[A-Za-z_][\w.]*$")
EXAMPLE = "module:attribute, e.g. main:app, config.wsgi:application or app:create_app()"


class TargetSyntaxError(ValueError):
    """The text is not a target; the message says what is wrong, for any caller to show."""


@dataclass(frozen=True)
class Target:
    """A parsed TARGET. `call` holds the factory's literal arguments when the text calls it."""

    module: str
    attribute: str
    call: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    @property
    def called(self) -> bool:
        return self.call is not None


def parse_target(text: str) -> Target:
    """`module:attribute[(literal args)]` into its parts; `TargetSyntaxError` naming what is
    wrong otherwise."""
    module, colon, rest = text.strip().partition(":")
    if not colon or not _PART.match(module) or module.endswith("."):
        raise TargetSyntaxError(f"{text!r} is not {EXAMPLE}")
    attribute, paren, arguments = rest.partition("(")
    attribute = attribute.strip()
    if not _PART.match(attribute) or attribute.endswith("."):
        raise TargetSyntaxError(f"{text!r} is not {EXAMPLE}")
    if not paren:
        return Target(module, attribute)
    try:
        call = ast.parse(f"f({arguments}", mode="eval").body
    except SyntaxError:
        raise TargetSyntaxError(f"{text!r}: the call's arguments do not parse") from None
    if not isinstance(call, ast.Call):
        raise TargetSyntaxError(f"{text!r} is not {EXAMPLE}")
    try:
        args = tuple(ast.literal_eval(arg) for arg in call.args)
        kwargs = {str(kw.arg): ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except ValueError:
        raise TargetSyntaxError(
            f"{text!r}: a factory's arguments must be literals (strings, numbers, True...)"
        ) from None
    if len(kwargs) != len(call.keywords):
        raise TargetSyntaxError(f"{text!r}: **arguments are not taken; name each one")
    return Target(module, attribute, (args, kwargs))
