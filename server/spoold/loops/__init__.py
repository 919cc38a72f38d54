"""Background loops: small classes with start / stop / run_once."""

from spoold.loops.base import Loop
from spoold.loops.pruner import Pruner
from spoold.loops.reaper import Reaper

__all__ = ["Loop", "Pruner", "Reaper"]
