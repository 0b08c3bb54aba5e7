"""`--poll-interval`: a thread that asks the manager to look at its stores again and again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class RepositoryPoller:
    """Calls `poll()` every `interval_s` seconds until stopped.

    The interval runs from the end of one poll to the start of the next, so a
    slow poll (a big download, a long load) never piles polls up behind it.
    """

    def __init__(self, poll: Callable[[], None], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("the poll interval must be more than 0 seconds")
        self._poll = poll
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="repository-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._poll()
            except Exception:  # one failed poll must not end polling
                log.exception("polling the model repository failed")
