"""A trained Keras network's forward pass in NumPy, for prediction without TensorFlow.

A Keras call costs ~10-20 ms of fixed overhead (graph dispatch, tensor conversion) per
block, which dominates region-sized jobs: the networks here are small MLPs whose arithmetic
for 8000 voxels takes a few milliseconds. :func:`compile_numpy` walks the functional graph
once, copies the weights (float32, as Keras computes) and returns a function evaluating
the same graph with NumPy matrix products; it returns ``None`` for any layer or activation
it does not know, and the caller keeps Keras then. Agreement with Keras is tested to float32
round-off (``tests/learning/test_inference.py``). The graph (:func:`numpy_graph`) is saved
with the estimator, so a saved network loads and predicts without importing TensorFlow
(:func:`forward_from_graph`).
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
    """(kernel, bias, activation name) of a Dense-like layer, or None."""
    kind = type(op).__name__
    act = getattr(getattr(op, "activation", None), "__name__", "")
    if act not in ACTIVATIONS:
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


def numpy_graph(model):
    """The network as a plain graph, or ``None`` when a layer is not supported.

    Returns
    -------
    steps : list of dict
        JSON-ready: ``kind`` (``dense``, ``add``, ``concat``), ``ins`` and ``out`` (tensor
        numbers, the input is 0), ``act`` (activation name of a dense step).
    arrays : dict of str -> ndarray (float32)
        ``k<i>`` and ``b<i>``: kernel and bias of dense step ``i``.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    numbers = {id(model.inputs[0]): 0}
    steps, arrays = [], {}
    for op in model.operations:
        kind = type(op).__name__
        if kind == "InputLayer":
            continue
        try:
            ins = [numbers[i] for i in _tensor_ids(op.input)]
        except KeyError:
            return None
        numbers[id(op.output)] = out = len(numbers)
        if kind in ("Dense", "CenteredDense"):
            dense = _dense_step(op)
            if dense is None or len(ins) != 1:
                return None
            kernel, bias, act = dense
            i = len(steps)
            arrays[f"k{i}"] = kernel
            if bias is not None:
                arrays[f"b{i}"] = bias
            steps.append({"kind": "dense", "ins": ins, "out": out, "act": act})
        elif kind == "Add":
            steps.append({"kind": "add", "ins": ins, "out": out})
        elif kind == "Concatenate" and op.axis in (-1, 1):
            steps.append({"kind": "concat", "ins": ins, "out": out})
        else:
            return None
    last = numbers.get(id(model.outputs[0]))
    if last is None:
        return None
    steps.append({"kind": "output", "ins": [last], "out": last})
    return steps, arrays


def forward_from_graph(steps, arrays):
    """A NumPy function ``f(X (n, F)) -> (n, outputs) float32`` evaluating a
    :func:`numpy_graph` (no Keras or TensorFlow needed).

    Raises ``ValueError`` for an unknown step or activation (a damaged file).
    """
    plan = []
    for i, step in enumerate(steps):
        kind = step.get("kind")
        ins, out = [int(v) for v in step["ins"]], int(step["out"])
        if kind == "dense":
            act = ACTIVATIONS.get(step.get("act"))
            if act is None or f"k{i}" not in arrays:
                raise ValueError(f"network graph step {i}: unknown activation "
                                 f"{step.get('act')!r} or missing weights.")
            kernel = np.asarray(arrays[f"k{i}"], dtype=np.float32)
            bias = arrays.get(f"b{i}")
            plan.append((kind, ins, out, (kernel, None if bias is None else
                                          np.asarray(bias, dtype=np.float32), act)))
        elif kind in ("add", "concat", "output"):
            plan.append((kind, ins, out, None))
        else:
            raise ValueError(f"network graph step {i}: unknown kind {kind!r}.")
    if not plan or plan[-1][0] != "output":
        raise ValueError("network graph: no output step.")
    last = plan[-1][2]

    def forward(X):
        values = {0: np.asarray(X, dtype=np.float32)}
        for kind, ins, out, dense in plan:
            args = [values[i] for i in ins]
            if kind == "dense":
                kernel, bias, act = dense
                y = args[0] @ kernel
                if bias is not None:
                    y += bias
                values[out] = act(y)
            elif kind == "add":
                values[out] = sum(args[1:], args[0].copy())
            elif kind == "concat":
                values[out] = np.concatenate(args, axis=-1)
        return values[last]

    return forward


def compile_numpy(model):
    """A NumPy function ``f(X (n, F) float32) -> (n, outputs) float32`` equal to ``model``.

    Supports graphs of ``InputLayer``, ``Dense`` (no LoRA/quantisation), microlearn's
    ``CenteredDense``, ``Add`` and ``Concatenate`` (last axis) with the activations of
    :data:`ACTIVATIONS`; returns ``None`` otherwise.
    """
    graph = numpy_graph(model)
    return None if graph is None else forward_from_graph(*graph)
