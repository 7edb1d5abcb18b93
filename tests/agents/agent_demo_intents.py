"""Intents for the agent tests: two that plain language cannot tell apart.

Loaded by servers under test through INTENTD_INTENT_MODULES=agent_demo_intents
(with this directory on PYTHONPATH).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from intentd.runtime.context import IntentContext
from intentd.runtime.registry import intent


class GreetParams(BaseModel):
    name: str = Field(default="world", description="Who to greet")


class Greeting(BaseModel):
    greeting: str


@intent("demo.greet_en", description="Say hello in English", examples=["greet someone"])
async def greet_en(ctx: IntentContext, params: GreetParams) -> Greeting:
    return Greeting(greeting=f"Hello, {params.name}!")


@intent("demo.greet_fr", description="Say hello in French", examples=["greet someone"])
async def greet_fr(ctx: IntentContext, params: GreetParams) -> Greeting:
    return Greeting(greeting=f"Bonjour, {params.name} !")
