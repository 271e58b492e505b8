"""The dockyard command line."""
