"""The Experience plane: identity, sessions and their context, the agent socket, admin."""
