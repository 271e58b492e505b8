"""dockyard: a container image registry speaking OCI Distribution 1.1 and Docker Registry v2."""

from dockyard import pid1

__version__ = "0.1.0"

# First thing every command (the console script, `python -m dockyard`) runs: as a
# container's PID 1, SIGTERM would be dropped until the server handles it (dockyard.pid1).
pid1.exit_on_sigterm()
