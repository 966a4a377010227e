"""Shared, seeded fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn import Acquisition


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def hcp():
    return Acquisition.scheme("hcp")


@pytest.fixture(scope="session")
def activeax_acq():
    return Acquisition.scheme("activeax")


@pytest.fixture(scope="session")
def ivim_acq():
    return Acquisition.scheme("ivim")


@pytest.fixture
def unit_vectors(rng):
    v = rng.normal(size=(50, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)
