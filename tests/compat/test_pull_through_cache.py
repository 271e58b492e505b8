"""A config written for registry:2 as a pull-through cache (``proxy.remoteurl``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.clients


def test_dockyard_refuses_pull_through_cache_config(tmp_path: Path) -> None:
    """dockyard has no pull-through cache mode yet; it must say so rather than start as an
    ordinary registry that answers "unknown" for everything upstream has."""
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'store'}}}}}\n"
        "proxy: {remoteurl: 'http://127.0.0.1:1'}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "proxy.remoteurl" in result.stderr
