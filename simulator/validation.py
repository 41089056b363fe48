"""Turn a pydantic ValidationError of a scenario into one readable paragraph (layer L1).

Each problem names its dotted key, the value and what is valid; an unknown key lists the valid keys
of its group; an int-or-distribution field reports only the branch that matches the input's type.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from simulator.errors import ConfigError, SimulatorError


class ScenarioError(ConfigError):
    """A scenario that does not validate: every problem with its dotted key, value and what is valid."""

    def __init__(self, exc: ValidationError, root: type[BaseModel]) -> None:
        problems: list[str] = []
        for err in exc.errors():
            loc = _plain_loc(err["loc"])
            if _is_other_union_branch(err):
                continue
            key = ".".join(loc) or "scenario"
            if err["type"] == "extra_forbidden":
                known = ", ".join(_known_keys(root, loc[:-1]))
                problems.append(f"{key} is not a scenario key (valid keys here: {known})")
            else:
                msg = str(err["msg"]).removeprefix("Value error, ")
                problem = f"{key} = {err.get('input')!r} is not valid: {msg}"
                if problem not in problems:
                    problems.append(problem)
        errors = exc.errors()
        self.field = ".".join(_plain_loc(errors[0]["loc"])) if errors else "scenario"
        self.value = errors[0].get("input") if errors else None
        self.allowed = "; ".join(problems)
        self.problems = problems
        SimulatorError.__init__(self, "invalid scenario: " + "; ".join(problems))


def _plain_loc(loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """A pydantic error location without list indices and union-branch labels (user-facing keys)."""
    out: list[str] = []
    skip_tag = False
    for part in loc:
        text = str(part)
        if skip_tag:
            skip_tag = False
            continue
        if text.startswith("tagged-union["):
            skip_tag = True  # the next part is the discriminator value, not a key
            continue
        if isinstance(part, int) or "[" in text or text in ("constrained-int", "int"):
            continue
        out.append(text)
    return tuple(out)


def _is_other_union_branch(err: Any) -> bool:
    """An int-or-mapping field reports both branches' errors; keep the one matching the input's type."""
    labels = [str(x) for x in err["loc"]]
    value = err.get("input")
    if isinstance(value, dict) and "constrained-int" in labels:
        return True
    return not isinstance(value, dict) and any(x.startswith("tagged-union[") for x in labels)


def _known_keys(root: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """Field names of the config group at dotted location ``loc`` (for 'unknown key' messages)."""
    model = root
    for part in loc:
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
