"""Calibration: JAX micro-benchmarks of one accelerator and the fit of their efficiency tables.

``calibration.measure`` (jax, numpy and the standard library only, so it runs on a bare GPU machine)
times GEMMs, attention, memory-bound kernels, collectives and whole Llama-shaped steps and writes the
raw measurements as JSON. ``calibration.fit`` (needs the simulator) turns them into the efficiency
table the cost model reads (``hardware_profiles/calibration/<profile>.json``). The simulator never
imports this package; ``trilemma calibrate`` imports it lazily.
"""
