"""Regression tests for review findings: unknown operator parameters, sigma_y handling, operator counters."""

import pytest

import operators
from ncvsd_cli.sampling.pnp_gd import likelihood_evals
from ncvsd_cli.sampling.presets import task_settings


@pytest.mark.parametrize("name", ["deblur-gauss", "sr4", "inpaint-box"])
def test_unknown_parameter_is_a_value_error_naming_it(name):
    with pytest.raises(ValueError, match="no_such_param"):
        operators.create(name, (3, 16, 16), no_such_param=1)
    cfg = operators.create(name, (3, 16, 16)).to_config()
    with pytest.raises(ValueError, match="no_such_param"):
        operators.from_config({**cfg, "no_such_param": 1})


def test_sigma_y_override_rescales_beta_but_explicit_beta_wins():
    base = task_settings("deblur-gauss")
    doubled = task_settings("deblur-gauss", sigma_y=2 * base["sigma_y"])
    assert doubled["beta"] == pytest.approx(4 * base["beta"])
    assert task_settings("deblur-gauss", sigma_y=0.1, beta=1e-3)["beta"] == 1e-3
    assert task_settings("deblur-gauss", sigma_y=base["sigma_y"])["beta"] == base["beta"]


@pytest.mark.parametrize("file_sigma", [0.0, 0.001, 0.02])
def test_beta_follows_sigma_y_through_a_preset_file_and_a_flag(file_sigma):
    """A preset file's sigma_y (without beta), then --sigma-y: beta is the one --sigma-y alone gives. A file's 0 kept
    the floor's beta (2000x too sharp at 0.1) and 0.001 divided by the unfloored level (5x too loose)."""
    alone = task_settings("deblur-gauss", sigma_y=0.1)["beta"]
    assert task_settings("deblur-gauss", preset_file={"sigma_y": file_sigma}, sigma_y=0.1)["beta"] == pytest.approx(alone)


@pytest.mark.parametrize("likelihood, evals", [("exact", 2), ("langevin", 200)])
def test_sr_operator_evaluations_follow_the_likelihood_mode(likelihood, evals):
    op = operators.create("sr4", (3, 16, 16), likelihood=likelihood)
    assert likelihood_evals(op) == evals


def test_atomic_write_all_is_all_or_nothing(tmp_path):
    from ncvsd_cli.images import atomic_write_all

    a, b = tmp_path / "a.png", tmp_path / "a.png.ncvsd.json"
    a.write_bytes(b"old image")
    b.write_bytes(b"old sidecar")
    with pytest.raises(TypeError):
        atomic_write_all([(a, b"new image"), (b, None)])  # the second write fails
    assert a.read_bytes() == b"old image" and b.read_bytes() == b"old sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.png.ncvsd.json"]  # no temporary files left
    atomic_write_all([(a, b"new image"), (b, b"new sidecar")])
    assert a.read_bytes() == b"new image" and b.read_bytes() == b"new sidecar"
