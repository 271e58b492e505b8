"""dockyard: a container image registry speaking OCI Distribution 1.1 and Docker Registry v2."""

__version__ = "0.1.0"
