"""Faithful simulators of Next Plus MES and the ERPs, and the `mesbridge sandbox` command."""

from sandbox.base import Faults, Simulator
from sandbox.serve import serve_in_thread

__all__ = ["Faults", "Simulator", "serve_in_thread"]
