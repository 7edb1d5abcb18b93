"""Running an ASGI app: uvicorn with the settings DESIGN §2 asks for, and a graceful drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import uvicorn

from intentd.collector import FullCollectionPacer
from intentd.config import Settings

Drain = Callable[[], Awaitable[None]]

# Once the server has stopped, the interpreter waits for every non-daemon
# thread before it exits. A DBOS executor thread retries a lost database for
# ever, so a process told to stop during a database outage would never exit.
# What such a thread was doing is durable: its workflow is recovered where it
# left off, by another replica or by the next start.
EXIT_GRACE_SECONDS = 5.0

log = structlog.get_logger("intentd.server")


class _DrainingServer(uvicorn.Server):
    """Closes WebSockets with 1001 (going away) before uvicorn's own 1012."""

    def __init__(self, config: uvicorn.Config, drain: Drain | None) -> None:
        super().__init__(config)
        self._drain = drain
        self._pacer = FullCollectionPacer()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What is loaded by now (modules, DBOS, SQLAlchemy's metadata, the
        # apps) lives as long as the process: frozen out of the collector's
        # sight, a full collection no longer walks it. Measured with 1,000
        # busy sockets: full collections paused the event loop ~200 ms.
        gc.collect()
        gc.freeze()
        self._pacer.install()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting before saying goodbye
        if self._drain is not None:
            try:
                await asyncio.wait_for(self._drain(), 5)
            except Exception:
                pass
        await super().shutdown(sockets)
        self._pacer.uninstall()
        # uvicorn re-raises the signal after a graceful stop, which makes the
        # exit status "killed by SIGTERM"; a drained process exits with 0.
        self._captured_signals.clear()


def uvicorn_config(app: Any, host: str, port: int, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",  # ~2x the default implementation's throughput here
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,  # our logging setup (intentd.logs) owns the handlers
        access_log=True,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=False,  # memory per socket matters more than bytes here
        timeout_graceful_shutdown=5,
        timeout_keep_alive=75,  # longer than our clients' keepalive_expiry (30 s) and than proxies' idle reuse
        backlog=4096,
        proxy_headers=True,
        server_header=False,
    )


def run_app(app: Any, host: str, port: int, settings: Settings, *, drain: Drain | None = None) -> None:
    """Serve ``app`` until told to stop; for a process's main function (the CLI's).

    Once the server has stopped, the process exits within ``EXIT_GRACE_SECONDS``
    even if a thread is still running.
    """
    exit_code = 1
    try:
        _DrainingServer(uvicorn_config(app, host, port, settings), drain).run()
        exit_code = 0
    except SystemExit as exc:  # uvicorn's "startup failed" (3)
        exit_code = exc.code if isinstance(exc.code, int) else 1
        raise
    finally:
        _exit_despite_hung_threads(EXIT_GRACE_SECONDS, exit_code)


def _exit_despite_hung_threads(grace: float, exit_code: int) -> None:
    """Exit with ``exit_code`` after ``grace`` s if a thread still holds the process then."""

    def force_exit() -> None:
        hung = [t.name for t in threading.enumerate()
                if t.is_alive() and not t.daemon and t is not threading.main_thread()]
        log.warning("exiting without the threads that did not stop", threads=hung, grace_seconds=grace)
        logging.shutdown()  # flush the handlers: os._exit skips it
        os._exit(exit_code)

    timer = threading.Timer(grace, force_exit)
    timer.daemon = True  # a clean exit does not wait for it
    timer.start()
