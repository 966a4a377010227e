"""Stateless, vectorised compartment signal models."""

from .base import Compartment
from .cylinder import CylinderGPD
from .dispersion import WatsonStick, WatsonZeppelin, kappa_to_odi, odi_to_kappa, watson
from .distributed import GammaCylinders
from .gaussian import Ball, Stick, Zeppelin
from .restricted import Dot
from .sphere import SphereGPD
from .spherical_mean import SphericalMeanStick, SphericalMeanTensor, SphericalMeanZeppelin

__all__ = ["Ball", "Compartment", "CylinderGPD", "Dot", "GammaCylinders",
           "SphereGPD", "SphericalMeanStick",
           "SphericalMeanTensor", "SphericalMeanZeppelin", "Stick", "WatsonStick",
           "WatsonZeppelin", "Zeppelin", "kappa_to_odi", "odi_to_kappa", "watson"]
