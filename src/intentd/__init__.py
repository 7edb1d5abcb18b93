"""intentd: a self-hostable platform for intent-driven agents."""

__version__ = "0.1.0"
