"""One LISTEN connection per process, fanned out to in-process subscribers."""

from spoold.notify.listener import CANCEL, JOB, KEYS, READY, TAIL, Listener, Subscription
from spoold.notify.mailbox import Mailbox

__all__ = ["CANCEL", "JOB", "KEYS", "READY", "TAIL", "Listener", "Mailbox", "Subscription"]
