"""SIGTERM for dockyard running as PID 1 (a container's main process) before the server
takes the signal over.

The kernel drops every signal sent to the first process of a PID namespace for which that
process has no handler. Python installs one for SIGINT, none for SIGTERM, so until the server
installs its own (after the imports, the config and the store's checks, which may wait on a
database) a `docker stop` is lost and ends in SIGKILL when its timeout runs out. The handler
here, installed when the `dockyard` package is first imported, does what SIGTERM does to any
other process: end it at once, with the status a shell reports for it (128 + 15 = 143, as
the container reports when run with `--init`). Nothing is served yet, so nothing is cut off.
Other commands run as PID 1 (`docker run ... garbage-collect`) keep it to their end: they
stop on SIGTERM as they would on a host.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType

STOPPED_MESSAGE = b"dockyard: stopped by SIGTERM\n"

_server_stopping: Callable[[], bool] | None = None


def exit_on_sigterm() -> None:
    """As PID 1: install the handler if SIGTERM has its default disposition (one the parent
    chose, such as ignoring it, is kept), then unblock SIGTERM. The image's entry point
    starts dockyard with it blocked, so that one sent while Python starts waits instead of
    being dropped: it is delivered here, to the handler."""
    if os.getpid() != 1:
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def hand_over(server_stopping: Callable[[], bool]) -> None:
    """A single-process server's start: uvicorn installs its own handler as it starts, then
    puts this one back once it has drained and raises the signal again. That SIGTERM must
    change nothing, as with the default disposition (PID 1 exits 0 after a drain): this
    handler ignores SIGTERM once `server_stopping()` says the server is stopping. Until
    uvicorn's handler is in place it still exits, so no SIGTERM is lost in between."""
    global _server_stopping
    _server_stopping = server_stopping


def _exit(signum: int, frame: FrameType | None) -> None:
    if _server_stopping is not None and _server_stopping():
        return
    # Ended as SIGTERM's default action ends any other process, without unwinding; os.write
    # is safe wherever the main thread was interrupted (inside a buffered write, say).
    os.write(2, STOPPED_MESSAGE)
    os._exit(128 + signum)
