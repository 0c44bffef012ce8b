#!/usr/bin/env python3
"""Turn a weight-only int8 ("block quantised", opencv_zoo *_int8bq.onnx) ONNX model into plain fp32.

Those models store each weight as int8 + scale + zero point and rebuild it at run time with
DequantizeLinear (opset 21, `block_size` attribute), usually followed by a Reshape. Every such node
whose inputs are all initializers is computed here once with numpy and replaced by an fp32
initializer, so the model becomes ordinary fp32 convolutions/GEMMs that any ONNX Runtime (and
the opset-13 kernels) can run. Graph inputs that are really weights (old exporters list every
initializer as an input) or that nothing reads any more are dropped, leaving only the real
image input(s). With --opset the default-domain opset is re-declared (e.g. 13, IR version 8):
after folding only plain operators remain, and the ONNX checker (full check, with shape
inference) must accept the result or nothing is written.

The output is deterministic: the same input and the same `onnx` version give the same bytes
(scripts/fetch-models.sh pins the version and checks the sha256 in models/manifest.toml).

With --dynamic-batch the first dimension of every graph input and output becomes the symbol "N", so one
run can embed many faces (only valid for models whose batch dimension flows through, e.g. via Flatten).

usage: fold_int8.py IN.onnx OUT.onnx [--opset N] [--dynamic-batch]
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

# IR version 8 (onnx 1.13+) covers default-domain opsets up to 18; that is all --opset allows.
MAX_OPSET_FOR_IR8 = 18


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def dequantize(q, scale, zero_point, axis, block_size):
    """y = (q - zero_point) * scale, in float32, with ONNX DequantizeLinear broadcasting rules."""
    q = q.astype(np.float32)
    scale = scale.astype(np.float32)
    zp = np.zeros_like(scale) if zero_point is None else zero_point.astype(np.float32)
    if scale.size == 1:  # per-tensor
        return (q - zp.reshape(())) * scale.reshape(())
    axis %= q.ndim
    if block_size:  # blocked: scale has shape of q with dim `axis` = ceil(dim / block_size)
        scale = np.repeat(scale, block_size, axis=axis)
        zp = np.repeat(zp, block_size, axis=axis)
        cut = tuple(slice(0, q.shape[axis]) if d == axis else slice(None) for d in range(q.ndim))
        return (q - zp[cut]) * scale[cut]
    shape = [1] * q.ndim  # per-axis: 1-D scale along `axis`
    shape[axis] = -1
    return (q - zp.reshape(shape)) * scale.reshape(shape)


def onnx_reshape(x, shape, allowzero):
    shape = [int(s) for s in shape]
    if not allowzero:  # ONNX: 0 means "keep this input dimension"
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def make_batch_dynamic(model):
    """Declares dim 0 of the graph's inputs and outputs as "N"; inferred intermediate shapes are dropped so
    they cannot contradict it (the checker re-infers them)."""
    g = model.graph
    for value in list(g.input) + list(g.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "N"
    del g.value_info[:]


def fold(model, opset=None, dynamic_batch=False):
    g = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in g.initializer}  # keeps initializer order
    kept, folded = [], 0
    for node in g.node:
        names = [i for i in node.input if i]
        constant = names and all(i in values for i in names)
        if constant and node.op_type == "DequantizeLinear":
            a = attrs(node)
            zp = values[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            y = dequantize(values[node.input[0]], values[node.input[1]], zp,
                           a.get("axis", 1), a.get("block_size", 0))
        elif constant and node.op_type == "Reshape":
            y = onnx_reshape(values[node.input[0]], values[node.input[1]], attrs(node).get("allowzero", 0))
        else:
            kept.append(node)
            continue
        values[node.output[0]] = y.astype(np.float32) if y.dtype.kind == "f" else y
        folded += 1

    read = {i for n in kept for i in n.input} | {o.name for o in g.output}
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in values.items() if k in read)

    produced = {o for n in kept for o in n.output}
    stored = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name in read and i.name not in stored and i.name not in produced]
    del g.input[:]
    g.input.extend(inputs)

    if opset:
        if not 7 <= opset <= MAX_OPSET_FOR_IR8:
            raise SystemExit(f"fold_int8: --opset {opset} not supported (7..{MAX_OPSET_FOR_IR8})")
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = opset
        model.ir_version = 8

    if dynamic_batch:
        make_batch_dynamic(model)

    left = sorted({n.op_type for n in kept if n.op_type in ("DequantizeLinear", "QuantizeLinear")})
    if left:
        raise SystemExit(f"fold_int8: {', '.join(left)} still present (non-constant inputs); refusing to write")
    onnx.checker.check_model(model, full_check=True)
    return folded


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--opset", type=int, default=None, help="re-declare this default-domain opset (e.g. 13)")
    ap.add_argument("--dynamic-batch", action="store_true", help="make dim 0 of inputs and outputs symbolic (N)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()

    model = onnx.load(args.src)
    folded = fold(model, args.opset, args.dynamic_batch)
    tmp = args.dst + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, args.dst)
    if not args.quiet:
        print(f"fold_int8: folded {folded} constant nodes, inputs {[i.name for i in model.graph.input]}, "
              f"wrote {args.dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
