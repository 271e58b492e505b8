"""Sending the registry's notification events (distribution's webhooks) from the index's
outbox, and reporting how far each endpoint has got."""
