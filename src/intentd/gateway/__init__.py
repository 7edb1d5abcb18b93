"""The gateway: the route contract and everything generated or checked from it."""
