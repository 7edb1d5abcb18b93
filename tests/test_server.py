"""The uvicorn server intentd runs its apps in."""

from __future__ import annotations

import asyncio
import gc

from intentd.config import load_settings
from intentd.server import _DrainingServer, uvicorn_config


async def _hello(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


async def test_what_startup_loaded_is_frozen_out_of_the_collector(tmp_path) -> None:
    gc.unfreeze()
    server = _DrainingServer(uvicorn_config(_hello, "127.0.0.1", 0, load_settings({}, data_dir=tmp_path)), None)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        # Full collections skip these objects: long GC pauses with many sockets otherwise.
        assert gc.get_freeze_count() > 0
    finally:
        server.should_exit = True
        await serving
        gc.unfreeze()
