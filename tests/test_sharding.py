"""Populations sharded over devices equal single-device results; chunking and shared stepping
change nothing beyond the solver tolerance.

JAX fixes its device list when it starts, so the sharded run happens in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (four CPU devices on one host)."""

import json
import os
import subprocess
import sys
import textwrap

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pytest

import cartpk
from cartpk.simulate import simulate_population_chunks

MODEL = cartpk.BloodStromaTumour("solid")
TIMES = jnp.linspace(0.0, 28.0, 29)
REGIMENS = [
    cartpk.Regimen.single(1e8, "blood_effector"),
    cartpk.Regimen.single(3e8, "blood_effector", duration=0.5),
    cartpk.Regimen.split(2e8, "blood_effector", fractions=[0.1, 0.3, 0.6], days=[0, 1, 2]),
    cartpk.Regimen.single(1e8, "blood_effector", time=3.0),
    cartpk.Regimen.schedule(5e7, "blood_effector", interval=7.0, count=3),
    cartpk.Regimen.single(5e7, "tumour_effector"),
]


def _population(n):
    params = MODEL.default_params()
    return {**params, "rho": jnp.linspace(0.2, 0.5, n), "k_kill": jnp.linspace(0.8, 1.2, n)}


def _states(solution):
    return np.stack([np.asarray(solution.states[s]) for s in MODEL.state_names], axis=-1)


SCRIPT = textwrap.dedent(
    """
    import json
    import diffrax as dfx, jax, numpy as np
    import cartpk

    cartpk.enable_x64()
    from test_sharding import MODEL, REGIMENS, TIMES, _population, _states

    devices = jax.devices()
    assert len(devices) == 4, devices
    out = {"devices": len(devices)}
    params = _population(8)
    regimens = [REGIMENS[i % len(REGIMENS)] for i in range(8)]
    for stepping in ("per_patient", "shared"):
        kwargs = dict(solver=dfx.Tsit5(), rtol=1e-9, stepping=stepping)
        single = cartpk.simulate_population(MODEL, params, regimens, TIMES, **kwargs)
        sharded = cartpk.simulate_population(
            MODEL, params, regimens, TIMES, devices=devices, **kwargs
        )
        a, b = _states(single), _states(sharded)
        out[stepping] = {
            "max_rel_vs_single": float(np.max(np.abs(b - a) / (np.abs(a) + 1e-6))),
            "status": np.asarray(sharded.status).tolist(),
            "on_devices": len(sharded.status.sharding.device_set)
            if hasattr(sharded.status, "sharding")
            else 1,
        }
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def sharded():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(__file__), env.get("PYTHONPATH")])
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def test_sharded_per_patient_equals_single_device(sharded):
    result = sharded["per_patient"]
    assert result["status"] == [0] * 8
    assert result["on_devices"] == 4
    assert result["max_rel_vs_single"] < 1e-12  # 0.0 measured: the same arithmetic


def test_sharded_shared_stepping_equals_single_device(sharded):
    """Each device takes its own shared steps (and restarts only at its own patients' dose
    times), so results agree with one device within the solver tolerance."""
    result = sharded["shared"]
    assert result["status"] == [0] * 8
    assert result["on_devices"] == 4
    assert result["max_rel_vs_single"] < 1e-6


def test_chunks_and_shared_stepping_match_per_patient():
    params = _population(5)
    regimens = [REGIMENS[i % len(REGIMENS)] for i in range(5)]
    kwargs = dict(solver=dfx.Tsit5(), rtol=1e-9)
    whole = cartpk.simulate_population(
        MODEL, params, regimens, TIMES, stepping="per_patient", **kwargs
    )
    pieces = list(
        simulate_population_chunks(
            MODEL, params, regimens, TIMES, chunk_size=2, stepping="shared", **kwargs
        )
    )
    assert [(p.start, p.stop) for p, _ in pieces] == [(0, 2), (2, 4), (4, 5)]
    assert all(isinstance(s.status, np.ndarray) for _, s in pieces)
    chunked = np.concatenate([_states(s) for _, s in pieces])
    np.testing.assert_allclose(chunked, _states(whole), rtol=1e-6, atol=1e-3)


def test_shared_stepping_isolates_a_bad_patient():
    params = _population(4)
    params["rho"] = params["rho"].at[1].set(jnp.nan)
    with pytest.warns(cartpk.SimulationWarning, match="1 of 4 patients failed"):
        sol = cartpk.simulate_population(
            MODEL, params, REGIMENS[0], TIMES, solver=dfx.Tsit5(), stepping="shared"
        )
    assert np.asarray(sol.status).tolist() == [0, 3, 0, 0]
    assert np.all(np.isfinite(_states(sol)[[0, 2, 3]]))


def test_bad_options_are_refused():
    with pytest.raises(cartpk.CartpkError, match="stepping must be one of"):
        cartpk.simulate_population(MODEL, MODEL.default_params(), None, TIMES, stepping="x")
    with pytest.raises(cartpk.CartpkError, match="devices must name at least one device"):
        cartpk.simulate_population(MODEL, MODEL.default_params(), None, TIMES, devices=[])
