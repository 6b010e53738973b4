"""Build an ONNX graph of a BERT sentence encoder straight from its safetensors weights.

Keel runs all-MiniLM-L6-v2 with onnxruntime and without torch, transformers or an
exporter, so the graph is written here by hand with ``onnx.helper``: the BERT encoder
(word + absolute position + token type embeddings, then post-LayerNorm self-attention
layers with erf-GELU feed-forward blocks), followed by mean pooling over the attention
mask and L2 normalisation. That is exactly what sentence-transformers computes for
this model (Transformer -> Pooling(mean) -> Normalize).

Graph interface:

* inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int64 ``[batch, sequence]``;
* output ``sentence_embedding``: float32 ``[batch, hidden]``, rows of unit length.

The sequence length must not exceed ``max_position_embeddings`` (512 for MiniLM);
the caller truncates.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from keel.errors import ConfigError

if TYPE_CHECKING:
    import onnx

__all__ = ["OPSET", "OUTPUT", "BertConfig", "build_model", "build_sentence_encoder", "load_weights"]

OPSET = 17
"""ONNX opset of the graph (17 is the first with ``LayerNormalization``)."""

IR_VERSION = 8
"""ONNX IR version written into the model: the oldest that carries opset 17, so older runtimes load it too."""

OUTPUT = "sentence_embedding"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

_ANCHOR = "embeddings.word_embeddings.weight"
_MASKED_SCORE = -10000.0  # added to attention scores of padding keys: exp() of it is exactly 0 in float32

Weights = Mapping[str, NDArray[np.float32]]


@dataclass(frozen=True, kw_only=True)
class BertConfig:
    """The sizes of a BERT encoder, as read from a Hugging Face ``config.json``."""

    vocab_size: int
    hidden_size: int
    num_heads: int
    num_layers: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.hidden_size // self.num_heads

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        """Read and check ``config.json``; anything this graph cannot express is a :class:`ConfigError`."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            config = cls(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=int(raw["hidden_size"]),
                num_heads=int(raw["num_attention_heads"]),
                num_layers=int(raw["num_hidden_layers"]),
                intermediate_size=int(raw["intermediate_size"]),
                max_position_embeddings=int(raw.get("max_position_embeddings", 512)),
                type_vocab_size=int(raw.get("type_vocab_size", 2)),
                layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"unreadable BERT config {path}: {exc!r}") from exc
        _check_supported(raw, config, path)
        return config


def _check_supported(raw: Mapping[str, Any], config: BertConfig, path: Path) -> None:
    unsupported = []
    if raw.get("hidden_act", "gelu") != "gelu":
        unsupported.append(f"hidden_act={raw.get('hidden_act')!r} (only the erf 'gelu')")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        unsupported.append(f"position_embedding_type={raw.get('position_embedding_type')!r} (only 'absolute')")
    if config.hidden_size % config.num_heads:
        unsupported.append(f"hidden_size {config.hidden_size} not divisible by {config.num_heads} heads")
    if unsupported:
        raise ConfigError(f"unsupported BERT config {path}: " + "; ".join(unsupported))


def load_weights(path: Path) -> dict[str, NDArray[np.float32]]:
    """The encoder's float tensors from a safetensors file, as float32, keyed without any prefix.

    Checkpoints name the same tensor ``embeddings.word_embeddings.weight``,
    ``bert.embeddings.word_embeddings.weight`` or ``0.auto_model.embeddings...``: the
    prefix in front of the word embeddings is found and stripped from every name that
    carries it; other tensors (heads, integer ``position_ids`` buffers) are dropped.
    """
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # OSError, or safetensors' own SafetensorError for a damaged file
        raise ConfigError(f"unreadable weights {path}: {exc!r}") from exc
    prefix = _weight_prefix(tensors.keys(), path)
    out: dict[str, NDArray[np.float32]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix) and np.issubdtype(value.dtype, np.floating):
            out[name[len(prefix) :]] = np.asarray(value, dtype=np.float32)
    return out


def _weight_prefix(names: Iterable[str], path: Path) -> str:
    candidates = sorted(name[: -len(_ANCHOR)] for name in names if name.endswith(_ANCHOR))
    if not candidates:
        raise ConfigError(f"{path} is not a BERT checkpoint: no tensor named *{_ANCHOR}")
    return candidates[0]  # the shortest: the encoder itself, not a nested copy


def build_sentence_encoder(model_dir: Path) -> onnx.ModelProto:
    """The sentence-embedding ONNX model for the BERT checkpoint in ``model_dir``.

    ``model_dir`` holds ``config.json`` and ``model.safetensors``, as in a
    sentence-transformers model folder.
    """
    config = BertConfig.from_file(model_dir / "config.json")
    return build_model(load_weights(model_dir / "model.safetensors"), config)


def build_model(weights: Weights, config: BertConfig) -> onnx.ModelProto:
    """Wire ``weights`` (unprefixed names, float32) into a checked ONNX model."""
    import onnx
    from onnx import TensorProto, helper

    graph = _GraphBuilder(weights, config)
    x = graph.embeddings()
    mask = graph.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    score_bias = graph.attention_bias(mask)
    for index in range(config.num_layers):
        x = graph.encoder_layer(x, score_bias, f"encoder.layer.{index}")
    graph.pool_and_normalise(x, mask, OUTPUT)

    dims = ["batch", "sequence"]
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "bert_sentence_encoder",
            [helper.make_tensor_value_info(name, TensorProto.INT64, dims) for name in INPUTS],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", config.hidden_size])],
            initializer=graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="keel",
        doc_string="BERT encoder + mean pooling + L2 normalisation, built from safetensors weights",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


class _GraphBuilder:
    """Accumulates nodes and initializers; each method adds one block and returns its output name."""

    def __init__(self, weights: Weights, config: BertConfig) -> None:
        self.weights = weights
        self.config = config
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: dict[str, int] = {}

    # -- primitives -------------------------------------------------------------------

    def _fresh(self, stem: str) -> str:
        count = self._names.get(stem, 0)
        self._names[stem] = count + 1
        return f"{stem}_{count}"

    def const(self, stem: str, value: NDArray[Any]) -> str:
        """Add an initializer; return its name."""
        from onnx import numpy_helper

        name = self._fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def scalar(self, stem: str, value: float) -> str:
        """A float32 scalar initializer."""
        return self.const(stem, np.array(value, dtype=np.float32))

    def ints(self, stem: str, *values: int) -> str:
        """A 1-D int64 initializer (shapes, axes)."""
        return self.const(stem, np.array(values, dtype=np.int64))

    def op(self, kind: str, *inputs: str, output: str | None = None, **attrs: Any) -> str:
        """Add a single-output node; return its output's name (``output`` if given)."""
        from onnx import helper

        name = output or self._fresh(kind.lower())
        self.nodes.append(helper.make_node(kind, list(inputs), [name], **attrs))
        return name

    def ops(self, kind: str, *inputs: str, outputs: int, **attrs: Any) -> list[str]:
        """Add a node with several outputs; return their names."""
        from onnx import helper

        names = [self._fresh(kind.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(kind, list(inputs), names, **attrs))
        return names

    def weight(self, name: str, shape: tuple[int, ...]) -> NDArray[np.float32]:
        """A checkpoint tensor, checked for presence and shape."""
        if name not in self.weights:
            raise ConfigError(f"BERT weights lack tensor {name!r}")
        value = self.weights[name]
        if value.shape != shape:
            raise ConfigError(f"BERT tensor {name!r} has shape {value.shape}, config.json implies {shape}")
        return value

    # -- blocks -----------------------------------------------------------------------

    def linear(self, x: str, prefix: str, n_in: int, n_out: int) -> str:
        """``x @ W.T + b`` for a torch ``Linear`` stored as ``prefix.weight`` ``[n_out, n_in]``."""
        w = self.const(prefix + ".weight_t", self.weight(prefix + ".weight", (n_out, n_in)).T)
        b = self.const(prefix + ".bias", self.weight(prefix + ".bias", (n_out,)))
        return self.op("Add", self.op("MatMul", x, w), b)

    def layer_norm(self, x: str, prefix: str) -> str:
        """LayerNorm over the hidden axis with the checkpoint's gamma/beta."""
        h = self.config.hidden_size
        gamma = self.const(prefix + ".weight", self.weight(prefix + ".weight", (h,)))
        beta = self.const(prefix + ".bias", self.weight(prefix + ".bias", (h,)))
        return self.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=self.config.layer_norm_eps)

    def embeddings(self) -> str:
        """LayerNorm(word[input_ids] + position[0:seq] + token_type[token_type_ids]): ``[B, S, H]``."""
        c = self.config
        words = self.weight("embeddings.word_embeddings.weight", (c.vocab_size, c.hidden_size))
        positions = self.weight("embeddings.position_embeddings.weight", (c.max_position_embeddings, c.hidden_size))
        types = self.weight("embeddings.token_type_embeddings.weight", (c.type_vocab_size, c.hidden_size))
        word = self.op("Gather", self.const("word_embeddings", words), "input_ids", axis=0)
        seq_len = self.op("Shape", "input_ids", start=1, end=2)
        position = self.op(
            "Slice", self.const("position_embeddings", positions), self.ints("zero", 0), seq_len, self.ints("axis", 0)
        )
        token_type = self.op("Gather", self.const("token_type_embeddings", types), "token_type_ids", axis=0)
        summed = self.op("Add", self.op("Add", word, position), token_type)
        return self.layer_norm(summed, "embeddings.LayerNorm")

    def attention_bias(self, mask: str) -> str:
        """``[B, 1, 1, S]``: 0 for real keys, a large negative number for padding keys."""
        inverted = self.op("Sub", self.scalar("one", 1.0), mask)
        bias = self.op("Mul", inverted, self.scalar("masked_score", _MASKED_SCORE))
        return self.op("Unsqueeze", bias, self.ints("axes", 1, 2))

    def self_attention(self, x: str, score_bias: str, prefix: str) -> str:
        """Multi-head self-attention, Q/K/V as one fused projection; returns the merged context ``[B, S, H]``."""
        c = self.config
        h, d = c.hidden_size, c.head_dim
        (wq, bq), (wk, bk), (wv, bv) = (
            (
                self.weight(f"{prefix}.attention.self.{part}.weight", (h, h)),
                self.weight(f"{prefix}.attention.self.{part}.bias", (h,)),
            )
            for part in ("query", "key", "value")
        )
        scale = np.float32(1.0 / math.sqrt(d))  # 1/sqrt(d) folded into the query projection
        w_qkv = np.concatenate([wq * scale, wk, wv], axis=0).T  # [H, 3H]
        b_qkv = np.concatenate([bq * scale, bk, bv])
        qkv = self.op("MatMul", x, self.const(prefix + ".qkv.weight_t", w_qkv))
        qkv = self.op("Add", qkv, self.const(prefix + ".qkv.bias", b_qkv))
        q, k, v = self.ops("Split", qkv, self.ints("qkv_split", h, h, h), outputs=3, axis=-1)
        heads = self.ints("heads_shape", 0, 0, c.num_heads, d)  # [B, S, heads, d]
        q = self.op("Transpose", self.op("Reshape", q, heads), perm=[0, 2, 1, 3])  # [B, heads, S, d]
        k = self.op("Transpose", self.op("Reshape", k, heads), perm=[0, 2, 3, 1])  # [B, heads, d, S]
        v = self.op("Transpose", self.op("Reshape", v, heads), perm=[0, 2, 1, 3])  # [B, heads, S, d]
        scores = self.op("Add", self.op("MatMul", q, k), score_bias)
        probs = self.op("Softmax", scores, axis=-1)
        context = self.op("Transpose", self.op("MatMul", probs, v), perm=[0, 2, 1, 3])  # [B, S, heads, d]
        return self.op("Reshape", context, self.ints("merged_shape", 0, 0, h))

    def gelu(self, x: str) -> str:
        """Exact GELU: ``0.5 * x * (1 + erf(x / sqrt(2)))`` (onnxruntime fuses this pattern)."""
        erf = self.op("Erf", self.op("Div", x, self.scalar("sqrt2", math.sqrt(2.0))))
        return self.op("Mul", self.op("Mul", x, self.op("Add", erf, self.scalar("one", 1.0))), self.scalar("half", 0.5))

    def encoder_layer(self, x: str, score_bias: str, prefix: str) -> str:
        """One post-LayerNorm transformer block."""
        h, i = self.config.hidden_size, self.config.intermediate_size
        context = self.self_attention(x, score_bias, prefix)
        attended = self.linear(context, f"{prefix}.attention.output.dense", h, h)
        x = self.layer_norm(self.op("Add", attended, x), f"{prefix}.attention.output.LayerNorm")
        inner = self.gelu(self.linear(x, f"{prefix}.intermediate.dense", h, i))
        out = self.linear(inner, f"{prefix}.output.dense", i, h)
        return self.layer_norm(self.op("Add", out, x), f"{prefix}.output.LayerNorm")

    def pool_and_normalise(self, x: str, mask: str, output: str) -> str:
        """Mean over real tokens, ``sum / max(count, 1e-9)``, then ``v / max(|v|, 1e-12)``: sentence-transformers'."""
        mask3 = self.op("Unsqueeze", mask, self.ints("axes", -1))  # [B, S, 1]
        seq_axis = self.ints("seq_axis", 1)
        summed = self.op("ReduceSum", self.op("Mul", x, mask3), seq_axis, keepdims=0)
        counts = self.op("ReduceSum", mask3, seq_axis, keepdims=0)
        mean = self.op("Div", summed, self.op("Max", counts, self.scalar("min_count", 1e-9)))
        norm = self.op("ReduceL2", mean, axes=[1], keepdims=1)  # axes stay an attribute until opset 18
        return self.op("Div", mean, self.op("Max", norm, self.scalar("min_norm", 1e-12)), output=output)
