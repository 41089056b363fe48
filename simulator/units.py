"""Unit constants. Vendor units are decimal (GB = 1e9 bytes); binary units only by their own name.

Everything inside the simulator is SI: seconds, bytes, FLOPs. Convert to ms, GB or % only in reports.
"""

from __future__ import annotations

KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12

KiB = 2**10
MiB = 2**20
GiB = 2**30

TFLOP = 1e12
PFLOP = 1e15

MS = 1e-3
US = 1e-6
