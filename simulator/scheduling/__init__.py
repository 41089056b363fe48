"""Who runs next: sequences, batch plans, per-replica state, batching policies and routers (L3)."""
