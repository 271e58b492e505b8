"""Logging as text or JSON (distribution's log.formatter), with configured extra fields."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from dockyard.config.model import LogConfig

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
          "panic": logging.CRITICAL}


class JSONFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            **self.fields,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        extra = {**self.fields, **getattr(record, "fields", {})}
        pairs = " ".join(f"{key}={_quote(value)}" for key, value in extra.items())
        line = f"time={stamp}Z level={record.levelname.lower()} msg={_quote(record.getMessage())}"
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _quote(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or '"' in text or not text) else text


def configure(config: LogConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (JSONFormatter(config.fields) if config.formatter != "text"
                                    else TextFormatter(config.fields))
    handler.setFormatter(formatter)
    root = logging.getLogger("dockyard")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[config.level])
    root.propagate = False
