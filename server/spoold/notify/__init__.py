"""One LISTEN connection per process, fanned out to in-process subscribers."""

from spoold.notify.listener import JOB, READY, Listener, Subscription
from spoold.notify.mailbox import Mailbox

__all__ = ["JOB", "READY", "Listener", "Mailbox", "Subscription"]
