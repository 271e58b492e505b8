"""The registry domain: repositories, blobs, uploads, manifests, tags and referrers.

Nothing here knows about HTTP; it speaks in domain objects and raises `RegistryError`s
that the API layer maps to status codes.
"""
