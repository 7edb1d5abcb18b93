"""The built-in intents: echo, wait, text.stats."""

from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from intentd.runtime.context import IntentContext
from intentd.runtime.registry import intent


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str | None = Field(default=None, description="Anything to send back")


class EchoResult(BaseModel):
    model_config = ConfigDict(extra="allow")


@intent("echo", description="Echo the params back unchanged", examples=["echo hello", "repeat after me"])
async def echo(ctx: IntentContext, params: EchoParams) -> EchoResult:
    return EchoResult(**params.model_dump(exclude_none=True))


class WaitParams(BaseModel):
    seconds: float = Field(ge=0, le=3600, description="How long to wait, in seconds (at most 3600)")


class WaitResult(BaseModel):
    waited: float


@intent(
    "wait",
    description="Wait a number of seconds, reporting progress every second; cancellable",
    examples=["wait 5 seconds", "sleep for 30 seconds", "pause a minute"],
)
async def wait(ctx: IntentContext, params: WaitParams) -> WaitResult:
    elapsed = 0.0
    while elapsed < params.seconds:
        chunk = min(1.0, params.seconds - elapsed)
        await ctx.sleep(chunk)
        elapsed += chunk
        await ctx.progress(elapsed / params.seconds, f"{elapsed:g} of {params.seconds:g} s")
    return WaitResult(waited=params.seconds)


_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
STOPWORDS = frozenset(
    """a an and are as at be but by for from has have he her his i in is it its of on or our she that the
    their them they this to was we were will with you your not no so if then than there these those what
    which who whom how when where why all any can could did do does had may might must shall should
    would me my mine us""".split()
)


class TextStatsParams(BaseModel):
    text: str = Field(min_length=1, max_length=1_000_000, description="The text to analyse")
    top: int = Field(default=5, ge=1, le=50, description="How many keywords to list")


class Keyword(BaseModel):
    word: str
    count: int


class TextStats(BaseModel):
    words: int
    unique_words: int
    sentences: int
    characters: int
    top_keywords: list[Keyword]


def count_text(text: str, top: int) -> TextStats:
    words = [w.lower() for w in _WORD.findall(text)]
    keywords = Counter(w for w in words if w not in STOPWORDS and len(w) > 1)
    sentences = len(_SENTENCE_END.findall(text)) or (1 if words else 0)
    return TextStats(
        words=len(words),
        unique_words=len(set(words)),
        sentences=sentences,
        characters=len(text),
        top_keywords=[Keyword(word=w, count=c) for w, c in sorted(keywords.items(), key=lambda kv: (-kv[1], kv[0]))[:top]],
    )


@intent(
    "text.stats",
    description="Count the words and sentences of a text and list its top keywords",
    examples=["count the words in this text", "text statistics", "what are the keywords of", "profile this text"],
)
async def text_stats(ctx: IntentContext, params: TextStatsParams) -> TextStats:
    await ctx.progress(0.1, "counting")
    # Up to 1 MB of text: counted off the event loop.
    stats = await ctx.step("count", count_text, params.text, params.top)
    return stats
