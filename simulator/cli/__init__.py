"""The ``trilemma`` command (layer L6): the only package that reads argv and writes result files.

Commands live in one module each (``run``, ``catalogs``) and register on the shared typer ``app``.
Every SimulatorError is printed as one paragraph (field, value, what is valid) with exit code 2 and
no traceback; see ``main``.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text

import simulator.cli.autoscale  # registers `trilemma autoscale`
import simulator.cli.calibrate  # registers `trilemma calibrate`
import simulator.cli.study  # registers `trilemma curve`, `knee`, `compare`
import simulator.cli.sweep  # registers `trilemma sweep`
import simulator.cli.validate  # noqa: F401  (registers `trilemma validate`)
from simulator.cli import catalogs, run
from simulator.cli.app import EXIT_BAD_INPUT, app, parse_overrides
from simulator.errors import SimulatorError

__all__ = ["app", "catalogs", "main", "parse_overrides", "run"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; a SimulatorError becomes one paragraph on stderr and exit code 2."""
    try:
        code = app(args=argv, standalone_mode=False)  # typer.Exit(n) and Ctrl-C (130) come back here
    except SimulatorError as exc:
        message = Text("error: ", style="bold red") + Text(str(exc))
        Console(stderr=True, soft_wrap=True).print(message, highlight=False)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # click's usage errors and aborts carry their own exit code
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(code)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
