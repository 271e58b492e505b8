"""Who may do what: access needed by each request, and the ways to prove identity."""

from dockyard.auth.access import Access, required_access
from dockyard.auth.base import AuthDenied, Authenticator, Identity

__all__ = ["Access", "AuthDenied", "Authenticator", "Identity", "required_access"]
