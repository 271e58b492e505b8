"""The package as users install it: `python -m build` makes the wheel, `pipx install` puts
it in an environment of its own, and the command runs from there."""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.container_image import REPO


def test_the_wheel_builds_installs_with_pipx_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
                   check=True, capture_output=True, timeout=900)
    (wheel,) = dist.glob("dockyard-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert metadata["Name"] == "dockyard"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata.get_all("Classifier")
    assert "dockyard/py.typed" in names
    assert "dockyard = dockyard.cli.main:main" in entry_points
    # No tests or benchmarks in it: the package alone.
    assert all(name.startswith(("dockyard/", "dockyard-")) for name in names), names

    home = tmp_path / "pipx"
    env = {**os.environ, "PIPX_HOME": str(home), "PIPX_BIN_DIR": str(home / "bin"),
           "PIPX_MAN_DIR": str(home / "man")}
    subprocess.run([sys.executable, "-m", "pipx", "install", str(wheel)], env=env, check=True,
                   capture_output=True, timeout=900)
    version = subprocess.run([str(home / "bin/dockyard"), "--version"], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    assert version.strip() == f"dockyard, version {metadata['Version']}"
    # A fresh environment of its own, not this one's.
    assert (home / "venvs/dockyard").is_dir()
