"""The web UI: pages served by the registry itself (see app.py)."""
