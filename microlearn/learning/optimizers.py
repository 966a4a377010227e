"""Keras optimizers by name, including a real proximal Adagrad.

Keras 3 ships Adam and Ftrl but no proximal Adagrad. :func:`proximal_adagrad_class`
builds one with the update of TensorFlow's ``ApplyProximalAdagrad`` (Duchi et al. 2011,
FOBOS): ``a += g²``, ``η = lr / sqrt(a)``, ``v = w - η g``, then the proximal step of
the elastic net ``w = sign(v) max(|v| - η l1, 0) / (1 + η l2)`` — so an L1 penalty
drives weights to exact zeros.

SDCA is not a gradient method; it trains linear models (:mod:`microlearn.learning.sdca`)
and the wide part of wide & deep networks.
"""

from __future__ import annotations

from functools import lru_cache

#: Optimizer names accepted by the learned estimators.
OPTIMIZERS = ("adam", "ftrl", "proximal-adagrad", "sdca")
#: Learning rate of each gradient optimizer when none is given. Adam normalises its steps by
#: a running RMS of the gradients, so 1e-3 suits it; Ftrl and ProximalAdagrad divide by the
#: root of the *accumulated* squared gradients, whose steps shrink like 1/sqrt(t): at 1e-3
#: they barely move (measured on NODDI/HCP: see tests/learning/test_estimators.py).
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "ftrl": 0.05, "proximal-adagrad": 0.05}


def default_learning_rate(name: str) -> float:
    """The learning rate :func:`make_optimizer` uses for ``name`` when none is given."""
    if name not in DEFAULT_LEARNING_RATES:
        raise ValueError(f"optimizer: {name!r} has no learning rate; choose one of "
                         f"{list(DEFAULT_LEARNING_RATES)}.")
    return DEFAULT_LEARNING_RATES[name]


@lru_cache(maxsize=1)
def proximal_adagrad_class():
    """The ``ProximalAdagrad`` Keras optimizer class (imports Keras on first use)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="microlearn")
    class ProximalAdagrad(keras.optimizers.Optimizer):
        """Adagrad with a proximal L1/L2 step (TensorFlow's ``ApplyProximalAdagrad``).

        Parameters
        ----------
        learning_rate : float
        initial_accumulator_value : float
            Starting value of the squared-gradient accumulators (> 0).
        l1_regularization_strength, l2_regularization_strength : float
            Elastic-net penalties applied by the proximal step.
        """

        def __init__(self, learning_rate=0.05, initial_accumulator_value=0.1,
                     l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                     name="proximal_adagrad", **kwargs):
            super().__init__(learning_rate=learning_rate, name=name, **kwargs)
            if initial_accumulator_value <= 0:
                raise ValueError("initial_accumulator_value must be positive.")
            if l1_regularization_strength < 0 or l2_regularization_strength < 0:
                raise ValueError("l1/l2 regularization strengths must be non-negative.")
            self.initial_accumulator_value = float(initial_accumulator_value)
            self.l1 = float(l1_regularization_strength)
            self.l2 = float(l2_regularization_strength)

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            init = keras.initializers.Constant(self.initial_accumulator_value)
            self._accumulators = [
                self.add_variable_from_reference(v, "accumulator", initializer=init)
                for v in var_list
            ]

        def update_step(self, gradient, variable, learning_rate):
            lr = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(gradient, variable.dtype)
            acc = self._accumulators[self._get_variable_index(variable)]
            self.assign_add(acc, ops.square(gradient))
            eta = lr / ops.sqrt(acc)
            v = variable - eta * gradient
            shrunk = ops.sign(v) * ops.maximum(ops.abs(v) - eta * self.l1, 0.0)
            self.assign(variable, shrunk / (1.0 + eta * self.l2))

        def get_config(self):
            config = super().get_config()
            config.update({
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1,
                "l2_regularization_strength": self.l2,
            })
            return config

    return ProximalAdagrad


def make_optimizer(name: str, learning_rate: float | None = None, *, l1: float = 0.0,
                   l2: float = 0.0):
    """A fresh Keras optimizer by name (``adam``, ``ftrl``, ``proximal-adagrad``).

    ``learning_rate=None`` takes the optimizer's :data:`DEFAULT_LEARNING_RATES` entry.
    """
    import keras

    if name in DEFAULT_LEARNING_RATES and learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATES[name]
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "ftrl":
        return keras.optimizers.Ftrl(learning_rate=learning_rate,
                                     l1_regularization_strength=l1,
                                     l2_regularization_strength=l2)
    if name == "proximal-adagrad":
        return proximal_adagrad_class()(learning_rate=learning_rate,
                                        l1_regularization_strength=l1,
                                        l2_regularization_strength=l2)
    if name == "sdca":
        raise ValueError("optimizer 'sdca' trains linear models only: use estimator "
                         "'linear-sdca', or 'wide-deep' with wide_optimizer='sdca'.")
    raise ValueError(f"optimizer: unknown name {name!r}; choose one of {list(OPTIMIZERS)}.")
