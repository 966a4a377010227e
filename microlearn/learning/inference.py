"""A trained Keras network's forward pass in NumPy, for prediction without TensorFlow calls.

A Keras call costs ~10-20 ms of fixed overhead (graph dispatch, tensor conversion) per
block, which dominates region-sized jobs: the networks here are small MLPs whose arithmetic
for 8000 voxels takes a few milliseconds. :func:`compile_numpy` walks the functional graph
once, copies the weights (float32, as Keras computes) and returns a function evaluating
the same graph with NumPy matrix products; it returns ``None`` for any layer or activation
it does not know, and the caller keeps Keras then. Agreement with Keras is tested to float32
round-off (``tests/learning/test_inference.py``).
"""

from __future__ import annotations

import math

import numpy as np


def _gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


#: Keras activation name -> in-place-safe NumPy function.
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0, out=x),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "gelu": _gelu,
}


def _tensor_ids(tensors):
    import keras

    return [id(t) for t in keras.tree.flatten(tensors)]


def _dense_step(op):
    """(kernel, bias, activation) of a Dense-like layer, or None."""
    kind = type(op).__name__
    act = ACTIVATIONS.get(getattr(getattr(op, "activation", None), "__name__", ""))
    if act is None:
        return None
    if kind == "Dense":
        if getattr(op, "lora_enabled", False) or getattr(op, "quantization_mode", None):
            return None
        kernel = np.asarray(op.kernel, dtype=np.float32)
        bias = np.asarray(op.bias, dtype=np.float32) if op.use_bias else None
    elif kind == "CenteredDense":
        kernel = (np.asarray(op.centre) + np.asarray(op.offset)).astype(np.float32)
        bias = np.asarray(op.bias, dtype=np.float32)
    else:
        return None
    return kernel, bias, act


def compile_numpy(model):
    """A NumPy function ``f(X (n, F) float32) -> (n, outputs) float32`` equal to ``model``.

    Supports graphs of ``InputLayer``, ``Dense`` (no LoRA/quantisation), microlearn's
    ``CenteredDense``, ``Add`` and ``Concatenate`` (last axis) with the activations of
    :data:`ACTIVATIONS`; returns ``None`` otherwise.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    steps = []
    for op in model.operations:
        kind = type(op).__name__
        ins, out = _tensor_ids(op.input), id(op.output)
        if kind == "InputLayer":
            continue
        if kind in ("Dense", "CenteredDense"):
            dense = _dense_step(op)
            if dense is None or len(ins) != 1:
                return None
            steps.append(("dense", ins, out, dense))
        elif kind == "Add":
            steps.append(("add", ins, out, None))
        elif kind == "Concatenate" and op.axis in (-1, 1):
            steps.append(("concat", ins, out, None))
        else:
            return None
    first, last = id(model.inputs[0]), id(model.outputs[0])

    def forward(X):
        values = {first: np.asarray(X, dtype=np.float32)}
        for kind, ins, out, dense in steps:
            args = [values[i] for i in ins]
            if kind == "dense":
                kernel, bias, act = dense
                y = args[0] @ kernel
                if bias is not None:
                    y += bias
                values[out] = act(y)
            elif kind == "add":
                values[out] = sum(args[1:], args[0].copy())
            else:
                values[out] = np.concatenate(args, axis=-1)
        return values[last]

    return forward
