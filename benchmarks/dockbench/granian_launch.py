"""Serve dockyard with granian instead of uvicorn, for comparing the two.

    python benchmarks/dockbench/granian_launch.py CONFIG

One worker, the same application factory and start-up checks as `dockyard serve`.
"""

from __future__ import annotations

import os
import sys

from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server

from dockyard.api.app import CONFIG_ENV
from dockyard.config import load_config
from dockyard.server import prepare_index, prepare_storage


def main(config_path: str) -> None:
    config = load_config(config_path)
    prepare_storage(config)
    prepare_index(config)
    os.environ[CONFIG_ENV] = os.path.abspath(config_path)
    Server("dockyard.api.app:create_app", address=config.http.host, port=config.http.port,
           interface=Interfaces.ASGI, workers=1, loop=Loops.uvloop, factory=True,
           log_level=LogLevels.warning, log_access=False, websockets=False).serve()


if __name__ == "__main__":
    main(sys.argv[1])
