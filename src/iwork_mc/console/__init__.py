"""The operator web console (``/console``); see :mod:`iwork_mc.console.app`."""

from iwork_mc.console.app import create_console_app

__all__ = ["create_console_app"]
