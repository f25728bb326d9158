"""Shared fixtures: a seeded generator and tiny odd-sized images (deepinv style)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import signal  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# The signal tests expect default dispositions; a test run started in the background (nohup, `cmd &` in a script)
# inherits SIGINT / SIGHUP ignored, which ncvsd keeps ignored on purpose. Restore the defaults for the tests and the
# processes they start.
for _name, _default in (("SIGINT", signal.default_int_handler), ("SIGHUP", signal.SIG_DFL), ("SIGTERM", signal.SIG_DFL)):
    _sig = getattr(signal, _name, None)
    if _sig is not None and signal.getsignal(_sig) is signal.SIG_IGN:
        signal.signal(_sig, _default)

torch.set_num_threads(1)


@pytest.fixture
def rng() -> torch.Generator:
    """A CPU generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def odd_image(rng) -> torch.Tensor:
    """A (1, 3, 13, 11) image in [-1, 1]: non-square and odd, to catch shape bugs."""
    return torch.rand(1, 3, 13, 11, generator=rng) * 2 - 1


@pytest.fixture
def first_image_fails(monkeypatch):
    """`Restorer.run` with the first measurement's every batch raising RuntimeError("out of memory") (an image that
    fails mid-run); the other measurements are restored as usual."""
    from ncvsd_cli.restore import Restorer

    real = Restorer._sample

    def sample(self, op, call, batch, idx, *args):
        if 0 in idx:
            raise RuntimeError("out of memory")
        return real(self, op, call, batch, idx, *args)

    monkeypatch.setattr(Restorer, "_sample", sample)
