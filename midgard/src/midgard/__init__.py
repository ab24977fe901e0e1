"""Midgard: Odin's node agent (NVML + psutil readings, served per node and pushed to the gateway)."""

__version__ = "0.1.0"
