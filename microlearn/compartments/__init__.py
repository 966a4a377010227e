"""Stateless, vectorised compartment signal models."""

from .base import Compartment
from .cylinder import CylinderGPD
from .dispersion import WatsonStick, WatsonZeppelin, kappa_to_odi, odi_to_kappa, watson
from .gaussian import Ball, Stick, Zeppelin
from .restricted import Dot

__all__ = ["Ball", "Compartment", "CylinderGPD", "Dot", "Stick", "WatsonStick",
           "WatsonZeppelin", "Zeppelin", "kappa_to_odi", "odi_to_kappa", "watson"]
