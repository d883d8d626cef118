"""User-facing errors: one line, naming the file or field and what is wrong.

The CLI prints ``str(error)`` and exits non-zero; it never shows a traceback for
these. Anything else that escapes is a bug.
"""


def listed(names: list[str], most: int = 20) -> str:
    """``a, b, c`` for a message, or for a long list its first ``most`` names and how many there are;
    ``none`` for an empty list."""
    if not names:
        return "none"
    return ", ".join(names) if len(names) <= most else f"{', '.join(names[:most])}, ... ({len(names)} in all)"


class CqSignalError(Exception):
    """Base class for every error the CLI reports as a one-line message."""


class ConfigError(CqSignalError):
    """A config file, option or data file has a missing or bad value."""


class NetworkError(CqSignalError):
    """A network file is missing, malformed, or lacks what a command needs."""


class SimulationError(CqSignalError):
    """SUMO failed to start or failed during a run."""


class SafetyError(CqSignalError):
    """A requested signal change would violate a safety rule (a bug if raised)."""
