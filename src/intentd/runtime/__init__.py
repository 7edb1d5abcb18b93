"""The Runtime plane: executes intents durably (DBOS) and records their events."""
