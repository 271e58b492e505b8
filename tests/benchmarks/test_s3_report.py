"""`benchmarks/run.py --storage s3`: its options, and that its report section replaces only
itself on the page (and survives a filesystem run's rewrite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from dockbench.report_s3 import HEADING, kept_section, with_section  # noqa: E402
from dockbench.settings import parse_args  # noqa: E402

FILESYSTEM_PAGE = """# Performance: dockyard vs distribution 2.8.2

## Bars

| a | b |

## Results (medians)

### not a section boundary

rows

## Concurrent downloads (separate run)

text
"""


def s3_section(marker: str) -> str:
    return f"{HEADING}\n\nmarker {marker}\n\n### Bars on S3\n\n| x |\n"


def test_the_s3_section_is_added_at_the_end_and_nothing_else_changes() -> None:
    page = with_section(FILESYSTEM_PAGE, s3_section("one"))
    assert page.startswith(FILESYSTEM_PAGE.rstrip("\n") + "\n\n")
    assert page.endswith(s3_section("one"))


def test_a_new_s3_section_replaces_the_old_one_only() -> None:
    page = with_section(FILESYSTEM_PAGE, s3_section("one"))
    # A section later on the page stays where it is, after the S3 one.
    page += "\n## Written later\n\nkept\n"
    again = with_section(page, s3_section("two"))
    assert "marker one" not in again and again.count(HEADING) == 1
    assert again == page.replace(s3_section("one"), s3_section("two"))
    assert again.endswith("## Written later\n\nkept\n")


def test_a_filesystem_report_keeps_the_s3_section_of_the_page_it_replaces() -> None:
    old_page = with_section(FILESYSTEM_PAGE, s3_section("kept"))
    kept = kept_section(old_page)
    assert kept == s3_section("kept")
    new_filesystem_report = FILESYSTEM_PAGE.replace("rows", "new rows")
    page = with_section(new_filesystem_report, kept)
    assert "new rows" in page and page.endswith(s3_section("kept"))
    assert kept_section(FILESYSTEM_PAGE) == ""


def test_s3_defaults_differ_from_the_filesystem_ones() -> None:
    s3 = parse_args(["--storage", "s3"])
    filesystem = parse_args([])
    assert s3.scenarios == ("limits", "monolithic", "chunked", "pull", "small", "skopeo", "gc")
    assert (s3.chunk_size, s3.rounds, s3.gc_rounds, s3.small_blobs) == (10 << 20, 3, 1, 1000)
    assert (filesystem.chunk_size, filesystem.rounds, filesystem.gc_rounds,
            filesystem.small_blobs) == (16 << 20, 5, 3, 2000)
    assert s3.out is not None and s3.out.name == "performance.md"
    assert parse_args(["--storage", "s3", "--quick"]).out is None


@pytest.mark.parametrize("argv, message", [
    (["--storage", "s3", "--scenarios", "tags"], "unknown scenarios on S3: tags"),
    (["--storage", "s3", "--s3-objectstore", "filestore"], "invalid choice"),
    (["--storage", "s3", "--s3-concurrency", "0"], "--s3-concurrency must be between"),
])
def test_bad_s3_options_are_refused_before_anything_starts(argv: list[str],
                                                           message: str) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), *argv],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
