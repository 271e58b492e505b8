"""The HTTP API layer: routing, headers and error mapping over the registry domain."""
