"""microlearn: diffusion MRI microstructure by fitting and by learning.

Importing the package is light: TensorFlow, Dask and widgets load only when used.
"""

from . import _numba_cache  # noqa: F401  first: sets the numba cache before any kernel
from .acquisition import Acquisition
from .models import MultiCompartmentModel, activeax, compose, get_model, ivim, noddi, zcd
from .parameters import Parameter, ParameterSpace
from .simulate import add_noise, sample_parameters, simulate, simulate_dataset

__version__ = "0.1.0"

__all__ = ["Acquisition", "MultiCompartmentModel", "Parameter", "ParameterSpace", "activeax",
           "add_noise", "compose", "get_model", "ivim", "noddi", "sample_parameters",
           "simulate", "simulate_dataset", "zcd", "__version__"]
