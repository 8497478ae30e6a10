"""The ``verticals`` command line (console script ``verticals.cli:main``)."""

from .app import build_parser, main

__all__ = ["build_parser", "main"]
