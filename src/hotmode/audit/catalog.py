"""Every rule of hotmode's own, listed: the rule modules, and the registry they fill.

The rule modules register their rules with `rules`' decorators when they are imported; this
module, above all of them, imports the list, so `rules` never imports its own users.
"""

from __future__ import annotations

from hotmode.audit import dev, every, prod
from hotmode.audit.rules import REGISTRY, Registered

RULE_MODULES = (dev, every, prod)


def load_rules() -> dict[str, Registered]:
    """Every registered rule, by id."""
    return REGISTRY
