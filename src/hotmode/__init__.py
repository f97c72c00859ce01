"""hotmode: one declaration, every mode x edition of a Python ASGI backend, checked and fast."""

__version__ = "0.1.0"
