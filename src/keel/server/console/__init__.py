"""The web console: server-rendered pages over the service's records, signed in with an API key."""
