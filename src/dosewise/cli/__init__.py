"""The ``dosewise`` command line: parsing and printing over :mod:`dosewise.app`."""

from dosewise.cli.main import app, main

__all__ = ["app", "main"]
