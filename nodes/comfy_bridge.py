"""Everything that touches ComfyUI's runtime: progress bar, status text, interrupt flag.

Outside ComfyUI (tests, scripts) every hook degrades to a no-op and interrupts never happen,
so the rest of the pack never imports ComfyUI modules directly.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, TypeVar

from ..client.logs import logger
from ..kontext.progress import ProgressEvent

PROGRESS_STEPS = 1000
INTERRUPT_CHECK_INTERVAL = 0.1  # seconds; ComfyUI only sets a flag, so we look this often

T = TypeVar("T")


class NodeInterrupted(Exception):
    """Raised outside ComfyUI where its InterruptProcessingException does not exist."""


def _model_management() -> Any | None:
    try:
        import comfy.model_management as model_management
    except ImportError:
        return None
    return model_management


def _progress_registry() -> Any | None:
    """ComfyUI's per-prompt progress registry (comfy_execution.progress), or None where absent."""
    try:
        from comfy_execution.progress import get_progress_state
    except ImportError:
        return None
    return get_progress_state()


def interrupt_requested() -> bool:
    """Has the user pressed Cancel in ComfyUI? (Reads the flag without clearing it.)"""
    model_management = _model_management()
    return bool(model_management and model_management.processing_interrupted())


def interrupt_exception() -> BaseException:
    """The exception that makes ComfyUI report 'interrupted' rather than an error."""
    model_management = _model_management()
    exception_class = getattr(model_management, "InterruptProcessingException", None)
    return exception_class() if exception_class else NodeInterrupted("Interrupted")


def _is_interrupt(error: BaseException) -> bool:
    return type(error).__name__ in ("InterruptProcessingException", "NodeInterrupted")


class NodeBridge:
    """One node execution's link to the UI: progress bar, status text, interrupt."""

    def __init__(self, node_id: str | None):
        self.node_id = node_id
        self._interrupted = False  # ComfyUI's progress hook clears the flag when it raises
        self._bar = self._progress_bar()
        self._server = self._prompt_server()

    def _progress_bar(self) -> Any | None:
        try:
            import comfy.utils
            return comfy.utils.ProgressBar(PROGRESS_STEPS, node_id=self.node_id)
        except Exception:  # not in ComfyUI, or an older ProgressBar signature
            return None

    @staticmethod
    def _prompt_server() -> Any | None:
        try:
            from server import PromptServer
            return PromptServer.instance
        except Exception:
            return None

    def show(self, event: ProgressEvent) -> None:
        """Move the progress bar and show the status text under the node (an ending moves
        no bar: after Cancel, ComfyUI's bar hook would only raise again)."""
        if self._bar is not None and event.stage not in ("cancelled", "failed"):
            try:
                self._bar.update_absolute(int(event.fraction * PROGRESS_STEPS), PROGRESS_STEPS)
            except Exception as error:  # the hook raises when Cancel was pressed
                if _is_interrupt(error):
                    self._interrupted = True
                else:
                    logger.debug("progress bar update failed: %s", error)
        if self._server is not None and self.node_id is not None:
            try:
                self._server.send_progress_text(event.text, self.node_id)
            except Exception as error:  # older ComfyUI without progress text
                logger.debug("progress text not shown: %s", error)

    def stopped_running(self) -> None:
        """Tell the frontend this node no longer runs, after it failed. ComfyUI reports a node
        finished only when it succeeds; after a failure frontend 1.27 kept drawing the node's
        progress bar and green outline until the next prompt, since its last progress_state
        still said "running". ComfyUI's own progress registry sends the state that ends them."""
        registry = _progress_registry()
        if registry is None or self.node_id is None:
            return
        try:
            registry.finish_progress(self.node_id)
        except Exception as error:  # noqa: BLE001 - the node's own error is what matters here
            logger.debug("progress state not ended: %s", error)

    def should_stop(self) -> bool:
        return self._interrupted or interrupt_requested()

    async def run_interruptible(self, work: Awaitable[T]) -> T:
        """Await `work`, checking the interrupt flag: the one place that watches for Cancel. On
        Cancel the work is cancelled (the pipeline stops waiting, cancels the fal job and says
        how it ended) and ComfyUI's interrupt exception is raised."""
        task = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({task}, timeout=INTERRUPT_CHECK_INTERVAL)
            if done:
                return task.result()
            if self.should_stop():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise interrupt_exception()
