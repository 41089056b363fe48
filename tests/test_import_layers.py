"""The import layers of DESIGN.md, kept true by parsing every module of ``simulator/`` with ``ast``.

A module may import ``simulator`` modules of its own layer or lower only; simpy is the engine's alone,
plotly the metrics', numba only in L2 or L4 hot loops, and jax (the calibration's) nowhere.
A new module must be placed in ``LAYERS`` below: the test names the ones that are not.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "simulator"

# Exact module names, or "pkg.*" for every module of a package (its __init__ included).
LAYERS: dict[str, int] = {
    "simulator.units": 0,
    "simulator.errors": 0,
    "simulator.precision": 0,
    "simulator.rng": 0,
    "simulator.resources": 0,
    "simulator.datafiles": 0,
    "simulator.config": 1,
    "simulator.config_workload": 1,
    "simulator.validation": 1,
    "simulator.hardware": 1,  # the package's __init__ re-exports the profile only
    "simulator.hardware.profile": 1,
    "simulator.hardware.calibration": 1,
    "simulator.model": 1,
    "simulator.model.catalog": 1,
    "simulator.model.spec": 1,
    "simulator.hardware.roofline": 2,
    "simulator.parallel.*": 2,
    "simulator.ops": 2,
    "simulator.memory": 2,
    "simulator.step_cost": 2,
    "simulator.speculative": 2,
    "simulator.spec_pricing": 2,
    "simulator.step_shape": 2,
    "simulator.step_precision": 2,
    "simulator.model.costs": 2,
    "simulator.model.layer_ops": 2,
    "simulator.model.moe": 2,
    "simulator.step_layers": 2,
    "simulator.step_attention": 2,
    "simulator.tradeoffs": 2,
    "simulator.workload.*": 3,
    "simulator.kv_cache": 3,
    "simulator.scheduling.*": 3,
    "simulator.resolve": 3,
    "simulator.disaggregation": 3,
    "simulator.engine.*": 4,
    "simulator.metrics.*": 5,
    "simulator.simulate": 5,
    "simulator.capacity.*": 5,
    "simulator.studies": 5,
    "simulator.autoscaling": 5,
    "simulator.validate": 5,
    "simulator.sweep": 6,
    "simulator.sweeps.*": 6,
    "simulator.cli.*": 6,
}
EXEMPT = {"simulator"}  # the curated public API re-exports every layer

# third-party package -> the packages of simulator/ allowed to import it (None: nowhere)
RESTRICTED: dict[str, tuple[str, ...] | None] = {
    "simpy": ("simulator.engine",),
    "plotly": ("simulator.metrics",),
    "jax": None,
    "jaxlib": None,
}
NUMBA_LAYERS = (2, 4)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _layer(module: str) -> int | None:
    if module in LAYERS:
        return LAYERS[module]
    for key, layer in LAYERS.items():
        if key.endswith(".*") and (module == key[:-2] or module.startswith(key[:-1])):
            return layer
    return None


@cache
def _imports(module: str) -> tuple[tuple[int, str], ...]:
    """(line, imported module) for every import in the file, lazy ones inside functions included.

    ``from a.b import c`` yields ``a.b.c`` when ``c`` is a module of ``simulator/``, else ``a.b``.
    """
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else base))
    return tuple(found)


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in MODULES if m not in EXEMPT and _layer(m) is None)
    assert not missing, f"add these modules to LAYERS in {Path(__file__).name}: {', '.join(missing)}"


def test_the_layer_table_sees_the_package() -> None:
    assert len(MODULES) > 20 and {"simulator.engine.loop", "simulator.kv_cache"} <= MODULES.keys()
    assert _layer("simulator.scheduling.policies") == 3 and _layer("simulator.model.costs") == 2
    assert _layer("simulator.model") == 1 and _layer("simulator.hardware.roofline") == 2


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in EXEMPT))
def test_imports_go_to_the_same_layer_or_lower(module: str) -> None:
    own = _layer(module)
    if own is None:
        pytest.skip("not in LAYERS (test_every_module_has_a_layer reports it)")
    bad = []
    for line, target in _imports(module):
        if target == "simulator":
            bad.append(f"line {line} imports the public API package (it imports every layer)")
        elif target.startswith("simulator."):
            layer = _layer(target)
            if layer is None or layer > own:
                bad.append(f"line {line} (L{own}) imports {target} (L{layer})")
    assert not bad, f"{module} imports a higher layer: " + "; ".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_restricted_third_party_imports(module: str) -> None:
    bad = []
    for line, target in _imports(module):
        top = target.split(".")[0]
        allowed = RESTRICTED.get(top, ())
        if top in RESTRICTED and not any(module == p or module.startswith(p + ".") for p in allowed or ()):
            bad.append(f"line {line} imports {target} (allowed only in {allowed or 'no module'})")
        if top == "numba" and _layer(module) not in NUMBA_LAYERS:
            bad.append(f"line {line} imports numba (only L2 or L4 hot loops may)")
    assert not bad, f"{module}: " + "; ".join(bad)
