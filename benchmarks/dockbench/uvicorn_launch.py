"""Serve dockyard with uvicorn (uvloop + httptools) instead of granian, for comparing the two.

    python benchmarks/dockbench/uvicorn_launch.py CONFIG

One worker, the same application factory and start-up checks as `dockyard serve`.
"""

from __future__ import annotations

import os
import sys

import uvicorn

from dockyard.api.app import CONFIG_ENV
from dockyard.config import load_config
from dockyard.server import prepare_index, prepare_storage


def main(config_path: str) -> None:
    config = load_config(config_path)
    prepare_storage(config)
    prepare_index(config)
    os.environ[CONFIG_ENV] = os.path.abspath(config_path)
    uvicorn.run("dockyard.api.app:create_app", factory=True, host=config.http.host,
                port=config.http.port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning", workers=1)


if __name__ == "__main__":
    main(sys.argv[1])
