"""Where the bundled data lives, for a source checkout and for an installed wheel alike.

Hardware profiles are top-level data in the repository (``hardware_profiles/``); the wheel carries
them as ``simulator/_data/hardware_profiles``. Model specs and traces are package data beside the code
that reads them.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def hardware_profiles_dir() -> Path:
    """The folder of bundled hardware profile YAML files."""
    installed = _PACKAGE_DIR / "_data" / "hardware_profiles"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / "hardware_profiles"


def model_catalog_dir() -> Path:
    """The folder of bundled model spec YAML files."""
    return _PACKAGE_DIR / "model" / "specs"


def traces_dir() -> Path:
    """The folder of bundled request traces."""
    return _PACKAGE_DIR / "workload" / "traces"


def default_scenario_path() -> Path:
    """The embedded scenario ``trilemma run`` plays when given none."""
    return _PACKAGE_DIR / "scenarios" / "default.yaml"
