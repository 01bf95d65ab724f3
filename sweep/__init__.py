"""Ray-distributed sweeps of context-length schedules for ALiBi language models."""

__version__ = "0.1.0"
