"""One LISTEN connection per process, fanned out to in-process subscribers."""

from spoold.notify.listener import Listener, Subscription

__all__ = ["Listener", "Subscription"]
