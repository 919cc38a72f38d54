"""Background loops: small classes with start / stop / run_once."""

from spoold.loops.base import Loop, LoopStats
from spoold.loops.bulk import BulkRunner
from spoold.loops.counts import Counts
from spoold.loops.pruner import Pruner
from spoold.loops.ready import ReadyPoller
from spoold.loops.reaper import Reaper
from spoold.loops.scheduler import Scheduler
from spoold.loops.watchdog import Watchdog

__all__ = ["BulkRunner", "Counts", "Loop", "LoopStats", "Pruner", "ReadyPoller", "Reaper", "Scheduler", "Watchdog"]
