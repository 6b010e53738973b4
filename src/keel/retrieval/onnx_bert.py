"""Build an ONNX graph of a BERT sentence encoder directly from its safetensors weights.

The graph is the encoder (embeddings, self-attention layers with erf-GELU feed-forward
blocks) followed by mean pooling over the attention mask and L2 normalisation, which
is what sentence-transformers computes for all-MiniLM-L6-v2. No torch, transformers
or exporter is involved: the weights are read with numpy and wired with ``onnx.helper``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BertConfig", "build_sentence_encoder", "load_weights"]

OPSET = 17


@dataclass(frozen=True, kw_only=True)
class BertConfig:
    """The sizes the graph needs, from ``config.json``."""

    hidden: int
    heads: int
    layers: int
    intermediate: int
    eps: float

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        """Read a Hugging Face ``config.json``."""
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported activation {raw.get('hidden_act')!r}")
        return cls(
            hidden=int(raw["hidden_size"]),
            heads=int(raw["num_attention_heads"]),
            layers=int(raw["num_hidden_layers"]),
            intermediate=int(raw["intermediate_size"]),
            eps=float(raw.get("layer_norm_eps", 1e-12)),
        )


def load_weights(path: Path) -> dict[str, NDArray[np.float32]]:
    """The float tensors of a safetensors file, with any ``bert.`` prefix removed."""
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    out: dict[str, NDArray[np.float32]] = {}
    for name, value in tensors.items():
        if value.dtype != np.float32:
            continue
        out[name.removeprefix("bert.")] = value
    return out


def build_sentence_encoder(weights: dict[str, NDArray[np.float32]], config: BertConfig) -> bytes:
    """The serialised ONNX model: (input_ids, attention_mask, token_type_ids) -> sentence_embedding."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(prefix: str, value: NDArray[np.generic]) -> str:
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), n))
        return n

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        out = name(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def w(key: str) -> NDArray[np.float32]:
        if key not in weights:
            raise KeyError(f"weight {key!r} missing from the model file")
        return weights[key]

    def linear(x: str, prefix: str) -> str:
        weight = const(prefix + ".w", w(prefix + ".weight").T.astype(np.float32))
        bias = const(prefix + ".b", w(prefix + ".bias"))
        return op("Add", [op("MatMul", [x, weight]), bias])

    def layer_norm(x: str, prefix: str) -> str:
        return op(
            "LayerNormalization",
            [x, const(prefix + ".g", w(prefix + ".weight")), const(prefix + ".b", w(prefix + ".bias"))],
            axis=-1,
            epsilon=config.eps,
        )

    head_dim = config.hidden // config.heads
    i64 = np.int64

    # Embeddings: word + position + token type, then LayerNorm.
    word = op("Gather", [const("word_emb", w("embeddings.word_embeddings.weight")), "input_ids"], axis=0)
    seq_len = op("Shape", ["input_ids"], start=1, end=2)  # 1-D: [sequence]
    first_rows = [const("zero", np.array([0], dtype=i64)), seq_len, const("axis0", np.array([0], dtype=i64))]
    pos = op("Slice", [const("pos_emb", w("embeddings.position_embeddings.weight")), *first_rows])
    types = op("Gather", [const("type_emb", w("embeddings.token_type_embeddings.weight")), "token_type_ids"], axis=0)
    x = layer_norm(op("Add", [op("Add", [word, pos]), types]), "embeddings.LayerNorm")

    # Additive attention bias: 0 where attended, -10000 where padded; shape [B, 1, 1, S].
    mask_f = op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    inverted = op("Sub", [const("one_f", np.array(1.0, dtype=np.float32)), mask_f])
    bias = op("Mul", [inverted, const("neg", np.array(-10000.0, dtype=np.float32))])
    bias = op("Unsqueeze", [bias, const("axes12", np.array([1, 2], dtype=i64))])

    split_shape = const("split_shape", np.array([0, 0, config.heads, head_dim], dtype=i64))
    merge_shape = const("merge_shape", np.array([0, 0, config.hidden], dtype=i64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    sqrt2 = const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))

    for index in range(config.layers):
        p = f"encoder.layer.{index}"
        q = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.query"), split_shape])], perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.key"), split_shape])], perm=[0, 2, 3, 1])
        v = op("Transpose", [op("Reshape", [linear(x, f"{p}.attention.self.value"), split_shape])], perm=[0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        probs = op("Softmax", [scores], axis=-1)
        context = op("Reshape", [op("Transpose", [op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
        attended = linear(context, f"{p}.attention.output.dense")
        x = layer_norm(op("Add", [attended, x]), f"{p}.attention.output.LayerNorm")
        inner = linear(x, f"{p}.intermediate.dense")
        gelu = op(
            "Mul",
            [
                op("Mul", [inner, half]),
                op("Add", [const("one_g", np.array(1.0, dtype=np.float32)), op("Erf", [op("Div", [inner, sqrt2])])]),
            ],
        )
        out = linear(gelu, f"{p}.output.dense")
        x = layer_norm(op("Add", [out, x]), f"{p}.output.LayerNorm")

    # Mean pooling over real tokens, then L2 normalisation.
    mask3 = op("Unsqueeze", [mask_f, const("axis_last", np.array([-1], dtype=i64))])
    axis1 = const("axis1", np.array([1], dtype=i64))
    summed = op("ReduceSum", [op("Mul", [x, mask3]), axis1], keepdims=0)
    counts = op("Clip", [op("ReduceSum", [mask3, axis1], keepdims=0), const("tiny", np.array(1e-9, dtype=np.float32))])
    mean = op("Div", [summed, counts])
    norm = op("Sqrt", [op("ReduceSum", [op("Mul", [mean, mean]), axis1], keepdims=1)])
    norm = op("Clip", [norm, const("eps", np.array(1e-12, dtype=np.float32))])
    nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"]))

    graph = helper.make_graph(
        nodes,
        "sentence_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", config.hidden])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="keel")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
