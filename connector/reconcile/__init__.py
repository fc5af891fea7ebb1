"""Gap fill from a provider's call log (Twilio first): the REST client, the pure plan of what to store
or complete, the background reconciler; and the heartbeat that makes downtime visible."""
