"""User-facing errors: the CLI turns these into one line on stderr and exit status 2."""


class UserError(Exception):
    """Bad input from the user (trace, config, arguments): exit 2, no traceback."""

    exit_code = 2


class TraceError(UserError):
    """A trace file cannot be read: names the file, and the line when there is one."""

    def __init__(self, path, message: str, line: int | None = None, text: str | None = None):
        where = f"{path}" if line is None else f"{path}:{line}"
        detail = f"{where}: {message}"
        if text is not None:
            shown = text if len(text) <= 80 else text[:77] + "..."
            detail += f": {shown!r}"
        super().__init__(detail)
        self.path = path
        self.line = line
        self.text = text


class ConfigError(UserError):
    """A config key is unknown, of the wrong type or out of range."""


class EngineError(UserError):
    """An engine from outside the package failed: it could not be imported, its class breaks
    the engine interface, or one of its hooks raised during the replay. Names the file and line."""
