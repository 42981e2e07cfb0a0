"""A minimal imitation of the ComfyUI runtime pieces the bridge touches, for tests.

It behaves like ComfyUI where it matters: the interrupt is only a flag, and the progress-bar
hook raises InterruptProcessingException (clearing the flag) when Cancel was pressed.
"""
from __future__ import annotations

import sys
import threading
import types


class FakeComfy:
    def __init__(self) -> None:
        self.interrupt_flag = False
        self.progress: list[tuple[int, int]] = []
        self.texts: list[tuple[str, str]] = []
        self.finished: list[str] = []  # node ids the progress registry was told have finished
        self._lock = threading.Lock()
        self.modules = self._build_modules()

    def press_cancel(self) -> None:
        with self._lock:
            self.interrupt_flag = True

    def _build_modules(self) -> dict[str, types.ModuleType]:
        fake = self

        class InterruptProcessingException(Exception):
            pass

        def processing_interrupted() -> bool:
            with fake._lock:
                return fake.interrupt_flag

        def throw_exception_if_processing_interrupted() -> None:
            with fake._lock:
                if fake.interrupt_flag:
                    fake.interrupt_flag = False
                    raise InterruptProcessingException()

        class ProgressBar:
            def __init__(self, total, node_id=None):
                self.total, self.node_id = total, node_id

            def update_absolute(self, value, total=None, preview=None):
                throw_exception_if_processing_interrupted()
                fake.progress.append((value, total or self.total))

        class PromptServer:
            instance = None

            def send_progress_text(self, text, node_id):
                fake.texts.append((node_id, text))

        class ProgressRegistry:  # comfy_execution.progress: the frontend's per-node states
            def finish_progress(self, node_id):
                fake.finished.append(node_id)

        registry = ProgressRegistry()
        PromptServer.instance = PromptServer()
        comfy = types.ModuleType("comfy")
        model_management = types.ModuleType("comfy.model_management")
        model_management.InterruptProcessingException = InterruptProcessingException
        model_management.processing_interrupted = processing_interrupted
        model_management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
        utils = types.ModuleType("comfy.utils")
        utils.ProgressBar = ProgressBar
        comfy.model_management, comfy.utils = model_management, utils
        server = types.ModuleType("server")
        server.PromptServer = PromptServer
        comfy_execution = types.ModuleType("comfy_execution")
        progress = types.ModuleType("comfy_execution.progress")
        progress.get_progress_state = lambda: registry
        comfy_execution.progress = progress
        return {"comfy": comfy, "comfy.model_management": model_management,
                "comfy.utils": utils, "server": server, "comfy_execution": comfy_execution,
                "comfy_execution.progress": progress}

    def install(self, monkeypatch) -> "FakeComfy":
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        return self

    @property
    def InterruptProcessingException(self):
        return self.modules["comfy.model_management"].InterruptProcessingException
