import numpy as np
import pytest

from microlearn import activeax, add_noise, compose, get_model, ivim, noddi, simulate, zcd
from microlearn.compartments import Ball, Stick, Zeppelin
from microlearn.simulate import crossing_directions, sample_parameters


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_noddi_fibres_and_maps(hcp, n):
    m = noddi(n)
    p = sample_parameters(m, 20, random_state=0)
    s = simulate(m, hcp, p)
    assert s.shape == (20, 288) and np.allclose(s[:, hcp.b0_mask], 1.0)
    maps = m.maps(p)
    if n == 1:
        assert {"odi", "icvf", "fiso", "mu", "kappa"} <= set(maps)
    if n > 1:
        assert {f"odi_{n}", f"ffib_{n}", f"mu_{n}", "odi", "icvf"} <= set(maps)


def test_noddi_is_zhang_model(hcp, unit_vectors):
    """Signal = fiso·ball + (1−fiso)[icvf·WS + (1−icvf)·WZ(d⊥ = d∥(1−icvf))]."""
    from microlearn.compartments.dispersion import (
        odi_to_kappa,
        watson_stick_signal,
        watson_zeppelin_signal,
    )

    m = noddi()
    mu = unit_vectors[:4]
    odi, icvf, fiso = np.array([0.1, 0.3, 0.5, 0.7]), np.array([0.2, 0.4, 0.6, 0.8]), 0.15
    p = m.parameters.pack({"mu": mu, "odi": odi, "icvf": icvf, "fiso": np.full(4, fiso)})
    k = odi_to_kappa(odi)
    ref = (fiso * np.exp(-hcp.bvals * 3e-9)
           + (1 - fiso) * (icvf[:, None] * watson_stick_signal(hcp, mu, 1.7e-9, k)
                           + (1 - icvf[:, None]) * watson_zeppelin_signal(
                               hcp, mu, 1.7e-9, 1.7e-9 * (1 - icvf), k)))
    assert np.allclose(m.signal(hcp, p), ref)


def test_ivim_equals_dipy(ivim_acq):
    from dipy.reconst.ivim import ivim_prediction

    m = ivim()
    p = m.parameters.pack({"d": [1e-9], "d_star": [12e-9], "f": [0.15]})
    ref = ivim_prediction(np.array([1.0, 0.15, 12e-3, 1e-3]), ivim_acq.to_dipy())
    assert np.allclose(m.signal(ivim_acq, p)[0], ref, atol=1e-12)


def test_constraints_return_new_models(hcp, unit_vectors):
    base = compose([Stick(), Zeppelin(), Ball()])
    m = base.tie("zeppelin_mu", "stick_mu").fix("ball_d_iso", 3e-9).tortuosity(
        "zeppelin_d_perp", d_par="zeppelin.d_par", intra="stick", extra="zeppelin")
    assert "zeppelin_mu" in base.parameter_names  # unchanged
    assert "zeppelin_mu" not in m.parameter_names and "ball_d_iso" not in m.parameter_names
    v = {"stick_mu": unit_vectors[:1], "stick_d_par": [1.7e-9], "zeppelin_d_par": [1.7e-9],
         "f_stick": [0.6], "f_zeppelin": [0.3], "f_ball": [0.1]}
    s = m.signal(hcp, v)
    ref = (0.6 * Stick().signal(hcp, mu=unit_vectors[:1], d_par=1.7e-9)
           + 0.3 * Zeppelin().signal(hcp, mu=unit_vectors[:1], d_par=1.7e-9,
                                     d_perp=1.7e-9 * (1 - 0.6 / 0.9))
           + 0.1 * np.exp(-hcp.bvals * 3e-9))
    assert np.allclose(s, ref)
    with pytest.raises(ValueError, match="not a free"):
        m.fix("nope", 1.0)


def test_builtin_names():
    assert set(zcd().map_names) >= {"diameter", "f_cylinder", "f_zeppelin", "f_dot", "mu"}
    assert set(activeax().map_names) >= {"diameter", "icvf", "fiso", "mu"}
    assert set(ivim().map_names) == {"f", "d", "d_star"}
    with pytest.raises(ValueError, match="Unknown model"):
        get_model("dti")
    with pytest.raises(ValueError, match="n_fibres"):
        noddi(4)


def test_crossing_angles(rng):
    d = crossing_directions(2000, 3, rng, min_angle_deg=45)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        ang = np.degrees(np.arccos(np.abs(np.sum(d[:, i] * d[:, j], -1))))
        assert ang.min() >= 45 - 1e-6
    assert np.allclose(np.linalg.norm(d, axis=-1), 1)


def test_priors_respected(hcp):
    m = noddi()
    p = m.parameters.unpack(sample_parameters(m, 5000, random_state=1,
                                               ranges={"odi": (0.1, 0.2)}))
    assert p["odi"].min() >= 0.1 and p["odi"].max() <= 0.2
    lo, hi = m.parameters["fiso"].prior_bounds
    assert p["fiso"].min() >= lo and p["fiso"].max() <= hi
    with pytest.raises(ValueError, match="unknown parameters"):
        sample_parameters(m, 5, ranges={"kappa": (1, 2)})


def test_noise_statistics(rng):
    s = np.full((200000,), 0.5)
    g = add_noise(s, 20, kind="gaussian", random_state=rng)
    assert g.std() == pytest.approx(1 / 20, rel=0.01) and g.mean() == pytest.approx(0.5, abs=1e-3)
    r = add_noise(np.zeros(200000), 20, random_state=rng)  # Rayleigh
    sigma = 1 / 20
    assert r.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.01)
    assert r.var() == pytest.approx((4 - np.pi) / 2 * sigma**2, rel=0.02)
    # Rician second moment: E[M²] = A² + 2σ²
    r2 = add_noise(s, 20, random_state=rng)
    assert np.mean(r2**2) == pytest.approx(0.25 + 2 * sigma**2, rel=0.01)
    with pytest.raises(ValueError, match="snr"):
        add_noise(s, -1)


def test_activeax_scheme_resolves_diameters(activeax_acq):
    """Diameters 2–10 µm in 1 µm steps differ by more than the noise at SNR 50.

    ‖ΔS‖ / σ is the whitened distance between the two noiseless signals; above 2 the
    two diameters are told apart by a likelihood-ratio test at about 95 %.
    """
    m = activeax()
    mu = np.array([[1.0, 0.0, 0.0]])
    sig = []
    for d in np.arange(2, 11) * 1e-6:
        p = m.parameters.pack({"mu": mu, "diameter": [d], "icvf": [0.7], "fiso": [0.0]})
        sig.append(m.signal(activeax_acq, p)[0])
    sigma = 1 / 50
    diffs = [np.linalg.norm(a - b) for a, b in zip(sig[:-1], sig[1:])]
    assert min(diffs) > 2 * sigma
    one = m.signal(activeax_acq, m.parameters.pack(
        {"mu": mu, "diameter": [1e-6], "icvf": [0.7], "fiso": [0.0]}))[0]
    assert np.linalg.norm(one - sig[0]) < sigma  # 1 vs 2 µm: below the noise
