"""LinkedIn Gateway backend: the ASGI entry point, `main:app`."""

from app.factory import create_app

app = create_app()
