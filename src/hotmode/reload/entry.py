"""How the zygote and a spawned worker start: bytecode routed first, then their own `main`.

Routing has to come before the first third-party import (uvicorn's, in the worker module), so
neither module is the entry point itself: `python -m hotmode.reload.entry zygote|worker ARGS...`.
"""

from __future__ import annotations

import sys

from hotmode.reload import pycache


def main(argv: list[str]) -> int:
    pycache.install(())  # a worker routes its app's files once it knows them
    if argv[1:2] == ["zygote"]:
        from hotmode.reload import zygote

        return zygote.main(argv[1:])
    from hotmode.reload import worker

    return worker.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
