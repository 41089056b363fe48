"""The simulator's error tree. Every message names the field, the value and what would be valid."""

from __future__ import annotations

from collections.abc import Iterable


class SimulatorError(Exception):
    """Base of every error the simulator raises on purpose (the CLI prints these without a traceback)."""


class ConfigError(SimulatorError, ValueError):
    """A scenario, profile, model spec or option has a value that is not allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field} = {value!r} is not valid: {allowed}")


class UnknownNameError(ConfigError):
    """A name (model, hardware profile, policy, trace) that is not in its catalog."""

    def __init__(self, field: str, value: object, known: Iterable[str]) -> None:
        names = sorted(known)
        super().__init__(field, value, "known names are " + ", ".join(names) if names else "none is known")
        self.known = names


class DoesNotFitError(SimulatorError):
    """A model and layout that do not fit in the accelerators' memory."""

    def __init__(self, what: str, required_bytes: float, available_bytes: float, suggestion: str) -> None:
        self.required_bytes = required_bytes
        self.available_bytes = available_bytes
        self.suggestion = suggestion
        super().__init__(
            f"{what} does not fit: it needs {required_bytes / 1e9:.1f} GB per GPU but "
            f"{available_bytes / 1e9:.1f} GB are available. {suggestion}"
        )


class DataFileError(SimulatorError, ValueError):
    """A user-supplied data file (trace, length table, model config, calibration table) is malformed."""

    def __init__(self, path: object, message: str, row: int | None = None) -> None:
        self.path = path
        self.row = row
        where = f"{path}" if row is None else f"{path}, row {row}"
        super().__init__(f"{where}: {message}")


def describe_validation_error(exc: Exception) -> str:
    """One line per problem of a pydantic ValidationError: dotted field, message, offending value."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    parts = []
    for err in errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc} = {err.get('input')!r}: {msg}")
    return "; ".join(parts)
