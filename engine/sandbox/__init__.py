"""Faithful simulators of Next Plus MES and the ERPs, and the `mesbridge sandbox` command."""

from engine.sandbox.base import Faults, Simulator
from engine.sandbox.serve import serve_in_thread

__all__ = ["Faults", "Simulator", "serve_in_thread"]
