"""dockbench: the side-by-side benchmark of dockyard and distribution 2.8.2 (see run.py)."""
