#!/usr/bin/env python3
"""Rewrite a PaddleOCR PP-LCNet / MobileNetV3 ONNX export (paddle2onnx) into an equivalent graph with fewer
element-wise operators: the same weights and the same function, up to float rounding.

paddle2onnx spells every layer of these backbones as a convolution followed by up to eight element-wise passes
over its output: the "learnable affine block" after it (Mul by a scalar, Add a scalar), hard-swish as four
operators (Add 3, Clip 0..6, Mul, Div 6), and another affine block before the next convolution. Each pass reads
and writes the whole feature map, and ONNX Runtime fuses none of them: in the OCR pipeline's profile they and the
layout reorders around them took a third of the detector's and recogniser's time. Here:

1. an affine block after a convolution is folded into its weights and bias (W' = aW, b' = ab + c);
2. an affine block before a convolution is folded into its weights (W' = aW). Its offset goes into the bias
   when the convolution pads nothing; before a padded one, a 1x1 depthwise convolution adds c/a (so the zero
   padding still stands for the affine block's output 0, as before);
3. hard-swish becomes x * HardSigmoid(x; alpha 1/6, beta 1/2), which ONNX Runtime runs in its blocked layout;
4. the detector's transposed convolutions take the per-channel Add after them as their bias, and its gated
   residuals x + x * gate (gate: one value per channel) become x * (gate + 1).

A pattern is rewritten only where its intermediate values feed nothing else and its scalars are constants. The
output is deterministic: the same input and the same `onnx` version give the same bytes (scripts/fetch-models.sh
pins the version and checks the sha256 in models/manifest.toml). The ONNX checker (full check, with shape
inference) must accept the result or nothing is written.

usage: fold_affine.py IN.onnx OUT.onnx [-q]
"""
import argparse
import math
import sys
from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper


class Graph:
    """The graph's nodes with producer/consumer maps and its constants (initializers and Constant nodes)."""

    def __init__(self, model):
        self.graph = model.graph
        self.nodes = list(self.graph.node)
        self.constants = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.outputs = {o.name for o in self.graph.output}
        self.fresh = 0
        self.index()

    def index(self):
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)

    def scalar(self, name):
        """The value of a one-element float constant, else None."""
        value = self.constants.get(name)
        if value is None or value.size != 1 or value.dtype != np.float32:
            return None
        return float(value.reshape(()))

    def only_consumer(self, name):
        """The single node reading `name`, when nothing else (a graph output included) does."""
        readers = self.consumers.get(name, [])
        return readers[0] if len(readers) == 1 and name not in self.outputs else None

    def constant(self, value, hint):
        """A new initializer holding `value` (float32); returns its name."""
        self.fresh += 1
        name = f"fold_affine.{hint}.{self.fresh}"
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        self.constants[name] = np.asarray(value, dtype=np.float32)
        return name

    def scalar_operand(self, node):
        """For a binary node with one scalar-constant input: (the other input, the scalar), else None."""
        if len(node.input) != 2:
            return None
        for k in (0, 1):
            value = self.scalar(node.input[k])
            if value is not None and node.input[1 - k] not in self.constants:
                return node.input[1 - k], value
        return None

    def remove(self, *nodes):
        ids = {id(n) for n in nodes}
        self.nodes = [n for n in self.nodes if id(n) not in ids]


def conv_weights(g, conv):
    """A Conv's weight and bias arrays (bias zeros when it has none), or None when they are not constants."""
    if conv.op_type != "Conv" or conv.input[1] not in g.constants:
        return None
    weight = g.constants[conv.input[1]].astype(np.float32)
    if len(conv.input) > 2 and conv.input[2]:
        if conv.input[2] not in g.constants:
            return None
        bias = g.constants[conv.input[2]].astype(np.float32)
    else:
        bias = np.zeros(weight.shape[0], dtype=np.float32)
    return weight, bias


def set_conv_weights(g, conv, weight, bias):
    inputs = [conv.input[0], g.constant(weight, "weight"), g.constant(bias, "bias")]
    del conv.input[:]
    conv.input.extend(inputs)


def attributes(node):
    return {x.name: helper.get_attribute_value(x) for x in node.attribute}


def group_count(conv):
    return attributes(conv).get("group", 1)


def pads_nothing(conv):
    a = attributes(conv)
    auto_pad = a.get("auto_pad", b"NOTSET")
    return auto_pad in (b"NOTSET", b"VALID") and not any(a.get("pads", []))


def affine_after(g, name):
    """(Mul, Add, a, c) when `name` feeds only `Mul(a)` whose output feeds only `Add(c)`, else None."""
    mul = g.only_consumer(name)
    if mul is None or mul.op_type != "Mul" or (m := g.scalar_operand(mul)) is None or m[0] != name:
        return None
    add = g.only_consumer(mul.output[0])
    if add is None or add.op_type != "Add" or (k := g.scalar_operand(add)) is None:
        return None
    return mul, add, m[1], k[1]


def fold_after_convolution(g, conv):
    """Conv then Mul(a), Add(c): the affine block in the convolution's weights and bias."""
    if (wb := conv_weights(g, conv)) is None or (found := affine_after(g, conv.output[0])) is None:
        return False
    mul, add, a, c = found
    weight, bias = wb
    set_conv_weights(g, conv, weight * np.float32(a), bias * np.float32(a) + np.float32(c))
    conv.output[0] = add.output[0]
    g.remove(mul, add)
    return True


def fold_before_convolution(g, conv):
    """Mul(a), Add(c) then Conv: the affine block in the convolution (see the module's step 2)."""
    if (wb := conv_weights(g, conv)) is None:
        return False
    add = g.producer.get(conv.input[0])
    if add is None or add.op_type != "Add" or g.only_consumer(add.output[0]) is not conv:
        return False
    if (k := g.scalar_operand(add)) is None:
        return False
    mul = g.producer.get(k[0])
    if mul is None or mul.op_type != "Mul" or g.only_consumer(mul.output[0]) is not add:
        return False
    if (m := g.scalar_operand(mul)) is None:
        return False
    source, a, c = m[0], m[1], k[1]
    weight, bias = wb
    if pads_nothing(conv):
        # Conv(aX + c) = Conv_{aW}(X) + c * (sum of W over each output's inputs and kernel).
        # Exactly rounded sums, so the bytes do not depend on how numpy orders a reduction on this CPU.
        sums = np.array([math.fsum(row) for row in weight.reshape(weight.shape[0], -1).astype(np.float64)])
        bias = bias + np.float32(c) * sums.astype(np.float32)
        conv.input[0] = source
        g.remove(mul, add)
    elif a != 0.0:
        # A 1x1 depthwise convolution adding c/a to every channel: ONNX Runtime keeps it in its blocked
        # layout, where an Add of a scalar made it reorder the feature map out and back in.
        channels = weight.shape[1] * group_count(conv)
        offset = helper.make_node(
            "Conv",
            [source, g.constant(np.ones((channels, 1, 1, 1)), "ones"),
             g.constant(np.full(channels, np.float32(c) / np.float32(a)), "offset")],
            [add.output[0]],
            group=channels,
        )
        g.nodes[g.nodes.index(add)] = offset
        g.remove(mul)
    else:
        return False
    set_conv_weights(g, conv, weight * np.float32(a), bias)
    return True


def hard_swish(g, div):
    """x * Clip(x + 3, 0, 6) / 6 as x * HardSigmoid(x, 1/6, 1/2)."""
    if div.op_type != "Div" or g.scalar(div.input[1]) != 6.0:
        return False
    mul = g.producer.get(div.input[0])
    if mul is None or mul.op_type != "Mul" or g.only_consumer(mul.output[0]) is not div:
        return False
    for x, clipped in (mul.input, reversed(mul.input)):
        clip = g.producer.get(clipped)
        if clip is not None and clip.op_type == "Clip":
            break
    else:
        return False
    if g.only_consumer(clip.output[0]) is not mul or len(clip.input) != 3:
        return False
    if g.scalar(clip.input[1]) != 0.0 or g.scalar(clip.input[2]) != 6.0:
        return False
    add = g.producer.get(clip.input[0])
    if add is None or add.op_type != "Add" or g.only_consumer(add.output[0]) is not clip:
        return False
    if g.scalar_operand(add) != (x, 3.0):
        return False
    gate = f"{div.output[0]}.gate"
    sigmoid = helper.make_node("HardSigmoid", [x], [gate], alpha=1.0 / 6.0, beta=0.5)
    product = helper.make_node("Mul", [x, gate], [div.output[0]])
    at = g.nodes.index(div)
    g.nodes[at : at + 1] = [sigmoid, product]
    g.remove(add, clip, mul)
    return True


def transposed_bias(g, conv):
    """ConvTranspose followed by an Add of a per-channel constant: the constant as its bias."""
    if conv.op_type != "ConvTranspose" or len(conv.input) > 2 or conv.input[1] not in g.constants:
        return False
    add = g.only_consumer(conv.output[0])
    if add is None or add.op_type != "Add" or len(add.input) != 2:
        return False
    other = add.input[1] if add.input[0] == conv.output[0] else add.input[0]
    channels = g.constants[conv.input[1]].shape[1] * group_count(conv)
    bias = g.constants.get(other)
    if bias is None or bias.dtype != np.float32 or bias.shape not in ((channels,), (1, channels, 1, 1)):
        return False
    conv.input.append(g.constant(bias.reshape(channels), "bias"))
    conv.output[0] = add.output[0]
    g.remove(add)
    return True


def gated_residual(g, add):
    """x + x * gate as x * (gate + 1): the squeeze-and-excitation residual of the detector's neck. The gate is
    one value per channel, so this saves a pass over the full feature map."""
    if add.op_type != "Add" or len(add.input) != 2:
        return False
    for x, product in (add.input, reversed(add.input)):
        mul = g.producer.get(product)
        if mul is not None and mul.op_type == "Mul" and x in mul.input and g.only_consumer(product) is add:
            break
    else:
        return False
    gate = mul.input[1] if mul.input[0] == x else mul.input[0]
    if gate == x or g.producer.get(gate) is None or g.producer[gate].op_type != "HardSigmoid":
        return False
    plus_one = f"{gate}.plus_one"
    at = g.nodes.index(add)
    g.nodes[at : at + 1] = [
        helper.make_node("Add", [gate, g.constant(np.float32(1.0), "one")], [plus_one]),
        helper.make_node("Mul", [x, plus_one], [add.output[0]]),
    ]
    g.remove(mul)
    return True


def rewrite_each(g, rewrite):
    """Tries `rewrite(g, node)` on every node the graph had at the start; returns how many it rewrote. The maps
    are rebuilt after each rewrite, which the next match relies on."""
    count = 0
    for node in list(g.nodes):
        if rewrite(g, node):
            g.index()
            count += 1
    return count


def drop_unused_constants(g):
    used = {name for node in g.nodes for name in node.input} | g.outputs
    g.nodes = [n for n in g.nodes if n.op_type != "Constant" or n.output[0] in used]
    kept = [i for i in g.graph.initializer if i.name in used]
    del g.graph.initializer[:]
    g.graph.initializer.extend(kept)
    inputs = [i for i in g.graph.input if i.name in used]
    del g.graph.input[:]
    g.graph.input.extend(inputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("-q", action="store_true", help="print nothing on success")
    args = parser.parse_args()
    model = onnx.load(args.input)
    g = Graph(model)
    before = len(g.nodes)
    counts = (
        rewrite_each(g, fold_after_convolution),
        rewrite_each(g, fold_before_convolution),
        rewrite_each(g, hard_swish),
        rewrite_each(g, transposed_bias),
        rewrite_each(g, gated_residual),
    )
    drop_unused_constants(g)
    del model.graph.node[:]
    model.graph.node.extend(g.nodes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, args.output)
    if not args.q:
        print(
            f"{args.input}: {counts[0]} affine blocks folded after convolutions, {counts[1]} before, "
            f"{counts[2]} hard-swishes, {counts[3]} transposed-convolution biases, {counts[4]} gated residuals; "
            f"{before} -> {len(g.nodes)} nodes",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
