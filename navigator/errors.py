"""Errors that reach the user as one clear line, never as a traceback."""


class NavigatorError(Exception):
    """Base for errors the CLI prints as ``error: <message>`` and exits non-zero."""


class PluginError(NavigatorError):
    """A plugin could not be found, loaded or registered."""


class ConfigError(NavigatorError):
    """A configuration file or value is invalid; the message names the key."""
