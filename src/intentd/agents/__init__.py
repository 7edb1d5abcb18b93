"""Agents: the conversational front of a session, run by the runtime as ``agent.turn`` executions.

An agent turns one user message into text (streamed as ``agent.delta`` events)
and child executions of user-visible intents. The default agent is offline and
deterministic; the LLM agent talks to any OpenAI-compatible endpoint.
"""
