#!/usr/bin/env python3
"""Benchmark dockyard against distribution 2.8.2 on this machine.

Run from the repository root:

    python benchmarks/run.py                 # full run, writes docs/performance.md
    python benchmarks/run.py --quick         # fast check (small sizes, 1 round)
    python benchmarks/run.py --quick --scenarios small,tags,catalog

Both registries (and nginx, for the machine limits) are started here, each on its own free
loopback port with its own temporary storage root and an equivalent config.yml, and are
stopped again at the end, also on error or Ctrl-C. Every scenario runs for both servers,
interleaved (the order flips every round), and the report holds the median of each metric
and the ratio dockyard/distribution. The code lives in the `dockbench` package beside this
file.

Only 127.0.0.1 is ever contacted. External tools: docker-registry, curl, wrk, ab, skopeo,
nginx.
"""

from __future__ import annotations

import sys

from dockbench.runner import main

if __name__ == "__main__":
    sys.exit(main())
