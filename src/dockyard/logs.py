"""Logging as text or JSON (distribution's log.formatter), with configured extra fields.

Every logger of the process goes through the one handler set here: dockyard's own, the
HTTP server's (uvicorn's `uvicorn.error`), and any library's, so that with the JSON
formatter every line a server writes is JSON."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from dockyard.config.model import LogConfig

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
          "panic": logging.CRITICAL}
# uvicorn says at info what dockyard says itself (started, listening, stopping): its
# chatter shows only at debug. It also says at info that a worker died (and is replaced),
# which an operator must see: that line is kept, as a warning.
SERVER_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
                 "warning": logging.WARNING, "error": logging.ERROR,
                 "fatal": logging.CRITICAL, "panic": logging.CRITICAL}
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")


class ServerChatter(logging.Filter):
    """Drops uvicorn's info lines, except a worker dying, which becomes a warning."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
        if message.startswith("Child process") and "died" in message:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = f"worker {message[len('Child process '):]}; " \
                                      "starting another", None
            return True
        return self.verbose


def _timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + "Z"


class JSONFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            **self.fields,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """logfmt-style `key=value` lines; a value that could end the line or forge a field
    (spaces, quotes, `=`, line breaks, other control characters) is quoted and escaped."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        extra = {**self.fields, **getattr(record, "fields", {})}
        pairs = " ".join(f"{key}={_quote(value)}" for key, value in extra.items())
        line = (f"time={_timestamp(record.created)} level={record.levelname.lower()} "
                f"msg={_quote(record.getMessage())}")
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


PLAIN = re.compile(r'[!#-<>-\[\]-~]+')  # visible ASCII but `"`, `=` and `\`
NEEDS_QUOTES = re.compile(r'[ "=\\]')


def _quote(value: object) -> str:
    """A value as it is, or quoted and escaped as JSON (line breaks, control characters
    and non-ASCII as escapes) if it is empty, holds a space, quote, `=` or backslash, or
    anything unprintable (which includes every line and paragraph separator)."""
    if type(value) is int:
        return str(value)
    text = str(value)
    if PLAIN.fullmatch(text) or (text.isprintable() and text
                                 and not NEEDS_QUOTES.search(text)):
        return text
    return json.dumps(text)


def configure(config: LogConfig) -> None:
    # No formatter here shows thread or process names: not collecting them makes every
    # record (an access log line per request) cheaper.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (JSONFormatter(config.fields) if config.formatter != "text"
                                    else TextFormatter(config.fields))
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.captureWarnings(True)  # Python's warnings too, as log lines
    root.setLevel(LEVELS[config.level])
    dockyard = logging.getLogger("dockyard")
    dockyard.handlers.clear()
    dockyard.propagate = True
    dockyard.setLevel(LEVELS[config.level])
    for name in SERVER_LOGGERS:
        server = logging.getLogger(name)
        server.handlers.clear()  # uvicorn's own, plain-text, handlers
        server.propagate = True
        server.setLevel(SERVER_LEVELS[config.level])
        server.filters[:] = [ServerChatter(verbose=config.level == "debug")]
    access = logging.getLogger("uvicorn.access")  # dockyard writes its own access log
    access.handlers.clear()
    access.propagate = False
