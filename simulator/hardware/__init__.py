"""Accelerators as data: profiles, and the roofline time of one operator on them."""

from __future__ import annotations

from simulator.hardware.profile import HardwareProfile, list_hardware, load_hardware

__all__ = ["HardwareProfile", "list_hardware", "load_hardware"]
