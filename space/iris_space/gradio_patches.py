"""Gradio, made to leave the CPU to the models: its idle polling slowed to what a chat needs.

On a 2-core Space every wake-up of Gradio's event loop takes a core from llama.cpp's threads, which spin at a barrier
until it comes back, so decoding slows measurably. These adjust Gradio's own settings where it has them, and its
polling sleeps where it does not.
"""

from __future__ import annotations

import gradio as gr

from . import settings


def quiet_queue(demo: gr.Blocks) -> None:
    """Gradio's queue looks for new requests every 1 ms and for progress every 10 ms, even when idle: ~8% of a core
    (measured: an idle Gradio app, 0.79 CPU-s in 10 s), taken from llama.cpp's threads on a 2-core Space while
    they decode. Every 10 ms and 50 ms is enough for a chat; a request waits at most 10 ms more to start."""
    queue = getattr(demo, "_queue", None)
    if hasattr(queue, "sleep_when_free") and hasattr(queue, "progress_update_sleep_when_free"):
        queue.sleep_when_free = max(queue.sleep_when_free, settings.QUEUE_POLL_S)
        queue.progress_update_sleep_when_free = max(queue.progress_update_sleep_when_free, 5 * settings.QUEUE_POLL_S)


class _SleepFloor:
    """The asyncio module, but with sleeps shorter than `floor` (other than 0, a plain yield) lengthened to it."""

    def __init__(self, module, floor: float):
        self._module, self.floor = module, floor

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def sleep(self, delay, *args, **kwargs):
        return self._module.sleep(self.floor if 0 < delay < self.floor else delay, *args, **kwargs)


def quiet_event_streams() -> None:
    """Gradio before 6.11 looks for each open event stream's next message every 1 ms (6.11 waits for it instead,
    gradio-app/gradio#13046): ~15% of a core while a reply streams, taken from llama.cpp's threads on a 2-core
    Space (axolotl pins Gradio 6.10, so a training environment has it). Its routes' sleeps shorter than
    QUEUE_POLL_S are lengthened to it: a streamed update leaves at most 10 ms later."""
    import gradio.routes

    major, minor = (int(part) for part in gr.__version__.split(".")[:2])
    if (major, minor) < (6, 11) and not isinstance(gradio.routes.asyncio, _SleepFloor):
        gradio.routes.asyncio = _SleepFloor(gradio.routes.asyncio, settings.QUEUE_POLL_S)


def apply(demo: gr.Blocks) -> None:
    """Both, on a Blocks whose queue is set up."""
    quiet_queue(demo)
    quiet_event_streams()
