"""The Voila server of every page: kernels end with their page, no request leaves the machine.

``python -m statarb_kit.server NOTEBOOK [--cull-after S] [voila options]`` (``statarb dashboard``
and ``statarb serve`` run it) is Voila with three changes:

- **A closed page ends its kernel at once.** Voila's page sends a shutdown beacon on
  ``beforeunload`` with the ``_xsrf`` cookie, but Voila never sets that cookie, so the beacon is
  refused (403) and the kernel runs on. :func:`set_xsrf_cookie` sets it before the kernel starts.
- **A page that is gone ends its kernel within ``cull_after`` seconds** even when no beacon came
  (a crashed browser, a lost network, ``curl``, a page that never connected):
  :class:`ViewerKernelManager` shuts a kernel down once no browser has been connected to it for
  that long, and it is not executing the page's notebook. Jupyter's own idle culling cannot do
  this: a live page's kernel sends widget updates all the time, so it is never idle.
- **A page closed mid-message is no error.** jupyter_server sends to a page without awaiting
  tornado's write; a page that closes while a message is on its way leaves a task failed with
  ``WebSocketClosedError`` that asyncio logs with a traceback ("Task exception was never
  retrieved"). :func:`quiet_closed_pages` logs it as one DEBUG line; any other failure is reported
  as asyncio would.
- **No outside stylesheet.** Voila's ``lab`` template links Font Awesome from a CDN (blocked
  offline, a privacy leak otherwise); the bundled ``statarb`` template drops the links (Voila's own
  bundle already carries the icon font).

A shut-down kernel writes what its Session held (``Session``'s exit hook).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError
from traitlets import Float
from traitlets.config import Config

log = logging.getLogger(__name__)

#: Default seconds a kernel may run with no browser connected (a page still loading under load
#: takes tens of seconds between its HTML and its WebSocket).
CULL_AFTER_S = 60.0
#: Where the bundled Voila template lives (``<here>/voila/templates/statarb``).
SHARE = Path(__file__).resolve().parent / "share"
TEMPLATE = "statarb"


class ViewerKernelManager(AsyncMappingKernelManager):
    """Kernels live while a browser is connected: one with no connection for ``cull_after``
    seconds (counted from its start when none ever came), and not executing a request, is shut
    down. Checked every ``cull_interval`` seconds."""

    cull_after = Float(CULL_AFTER_S, config=True, help="seconds a kernel may run with no browser connected")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._alone_since: dict[str, float] = {}
        # the base class starts its periodic check only with an idle timeout: its value is unused here
        self.cull_idle_timeout = max(1, int(self.cull_after))
        self.cull_interval = max(1, min(10, int(self.cull_after / 4) or 1))

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        kernel = self._kernels.get(kernel_id)
        if kernel is None:  # shut down by its page's beacon while the others were checked
            self._alone_since.pop(kernel_id, None)
            return
        now = time.monotonic()
        if self._kernel_connections.get(kernel_id, 0) > 0 or getattr(kernel, "execution_state", None) == "busy":
            self._alone_since.pop(kernel_id, None)
            return
        since = self._alone_since.setdefault(kernel_id, now)
        if now - since >= self.cull_after:
            self.log.warning("Shutting down kernel %s: no page connected to it for %.0f s", kernel_id, now - since)
            self._alone_since.pop(kernel_id, None)
            await self.shutdown_kernel(kernel_id)

    async def cull_kernels(self) -> None:
        for gone in set(self._alone_since) - set(self._kernels):  # shut down by their page's beacon
            del self._alone_since[gone]
        await super().cull_kernels()


def set_xsrf_cookie(request_handler, notebook=None, cwd=None) -> None:
    """Voila prelaunch hook: reading the handler's XSRF token sets the ``_xsrf`` cookie that the
    page's shutdown beacon sends back."""
    _ = request_handler.xsrf_token


def quiet_closed_pages(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The server loop's exception handler: a write to a page that closed meanwhile is one DEBUG
    line; anything else goes to asyncio's default handler (a traceback, as before)."""
    if isinstance(context.get("exception"), (WebSocketClosedError, StreamClosedError)):
        log.debug("a page closed while a message was on its way to it")
        return
    loop.default_exception_handler(context)


def config(cull_after: float = CULL_AFTER_S) -> Config:
    """The traitlets configuration of the server (kernel manager, hook, template)."""
    c = Config()
    c.VoilaConfiguration.multi_kernel_manager_class = ViewerKernelManager
    c.VoilaConfiguration.prelaunch_hook = set_xsrf_cookie
    c.VoilaConfiguration.template = TEMPLATE
    c.ViewerKernelManager.cull_after = float(cull_after)
    return c


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m statarb_kit.server", add_help=False)
    parser.add_argument("--cull-after", type=float, default=CULL_AFTER_S)
    known, voila_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.cull_after <= 0:
        raise SystemExit(f"--cull-after must be > 0 seconds, got {known.cull_after:g}")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(SHARE), os.environ.get("JUPYTER_PATH", "")) if p)
    from voila.app import Voila

    loop = asyncio.new_event_loop()  # tornado's IOLoop.current() runs this one
    loop.set_exception_handler(quiet_closed_pages)
    asyncio.set_event_loop(loop)
    Voila.launch_instance(argv=voila_args, config=config(known.cull_after))


if __name__ == "__main__":
    main()
