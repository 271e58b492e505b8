"""htpasswd files for tests, made with the real `htpasswd -B` (apache2-utils)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.server import require_tool


def htpasswd_with_alice(directory: Path) -> Path:
    """A new htpasswd file in `directory` holding alice (password: wonderland)."""
    path = directory / "htpasswd"
    subprocess.run([require_tool("htpasswd"), "-Bbc", str(path), "alice", "wonderland"],
                   check=True, capture_output=True)
    return path
