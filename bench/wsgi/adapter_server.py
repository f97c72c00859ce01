"""Serves the bench's Flask shop on uvicorn behind one WSGI adapter, for the adapters' comparison:
`python adapter_server.py a2wsgi|uvicorn PORT APP_DIR`. The same uvicorn, the same app; only the
adapter differs (a2wsgi's WSGIMiddleware, or uvicorn's own, deprecated, _WSGIMiddleware)."""

from __future__ import annotations

import sys
import warnings


def main(argv: list[str]) -> int:
    adapter, port, app_dir = argv[1], int(argv[2]), argv[3]
    sys.path.insert(0, app_dir)
    import uvicorn
    from wsgi import app  # the shop

    if adapter == "a2wsgi":
        from a2wsgi import WSGIMiddleware

        asgi = WSGIMiddleware(app, workers=10)
    else:
        from uvicorn.middleware.wsgi import _WSGIMiddleware

        with warnings.catch_warnings():  # "deprecated, you should switch to a2wsgi"
            warnings.simplefilter("ignore", DeprecationWarning)
            asgi = _WSGIMiddleware(app, workers=10)
    uvicorn.run(asgi, host="127.0.0.1", port=port, log_level="warning", http="h11")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
