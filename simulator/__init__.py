"""Trilemma: a discrete-event simulator of LLM inference clusters.

The package is layered; a module imports only from its own layer or below (see README, "Architecture"):

- L0 ``units``, ``errors``, ``precision``, ``rng``, ``resources``: vocabulary, no simulator logic.
- L1 ``hardware``, ``model``, ``config``: data (profiles, specs, scenarios) and their loaders.
- L2 ``parallel``, ``ops``, ``memory``, ``step_cost``: the roofline cost model, pure functions.
- L3 ``workload``, ``kv_cache``, ``scheduling``, ``resolve``: requests, paged KV cache, batching policies.
- L4 ``engine`` (the only importer of simpy): the event loop over routers and replicas.
- L5 ``metrics``, ``simulate``, ``cli``: records to DataFrames and summaries, the public API, the CLI.
"""

from __future__ import annotations

__version__ = "0.1.0"
