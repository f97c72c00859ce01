"""The LinkedIn Gateway backend package."""

__version__ = "1.4.0"
