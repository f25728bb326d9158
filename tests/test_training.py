"""Training machinery: EMA, schedules, data, the posterior-score identity, teacher steps, distillation, resume."""

import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ncvsd_cli.training import data as D
from ncvsd_cli.training.common import latest_snapshot
from ncvsd_cli.training.ema import PowerFunctionEMA, power_function_beta, sigma_rel_to_gamma
from ncvsd_cli.training.loop import learning_rate, parse_duration
from ncvsd_cli.training.losses import (
    discriminator_loss,
    edm_weight,
    karras_grid,
    posterior_query,
    uncertainty_loss,
    uniform_grid_sigma,
    vsd_loss,
)


# ------------------------------------------------------------------------------------------------ EMA, schedule
@pytest.mark.parametrize("sigma_rel, gamma", [(0.05, 16.97), (0.10, 6.94)])
def test_ema_exponent(sigma_rel, gamma):
    g = sigma_rel_to_gamma(sigma_rel)
    assert abs(g - gamma) < 0.005
    assert abs(g**3 + 7 * g**2 + (16 - sigma_rel**-2) * g + 12 - sigma_rel**-2) < 1e-6


def test_ema_first_step_copies_then_averages():
    net = torch.nn.Linear(3, 2)
    ema = PowerFunctionEMA(net, (0.05,))
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net, cur_nimg=4, batch_size=4)  # beta = 0: copy
    assert torch.equal(ema.emas[0].weight, net.weight)
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(net, cur_nimg=8, batch_size=4)
    beta = power_function_beta(sigma_rel_to_gamma(0.05), 8, 4)
    assert torch.allclose(ema.emas[0].weight, torch.full_like(net.weight, beta * 1 + (1 - beta) * 3))


def test_learning_rate_schedule():
    assert learning_rate(0, 0.01, 32, 100, 1000) == 0.0
    assert learning_rate(500, 0.01, 32, 100, 1000) == pytest.approx(0.005)
    assert learning_rate(3200, 0.01, 32, 100, 1000) == pytest.approx(0.01)
    assert learning_rate(4 * 3200, 0.01, 32, 100, 1000) == pytest.approx(0.005)
    assert learning_rate(10**6, 0.01, 32, 0, 0) == 0.01


@pytest.mark.parametrize("text, field, value", [("30min", "seconds", 1800), ("2h", "seconds", 7200),
                                               ("200kimg", "nimg", 200_000), ("64Mi", "nimg", 64 << 20),
                                               ("5", "nimg", 5000), ("300steps", "steps", 300),
                                               ("2m", "seconds", 120), ("2MIN", "seconds", 120),
                                               ("1.5MImg", "nimg", 1_500_000)])
def test_parse_duration(text, field, value):
    assert getattr(parse_duration(text), field) == value


@pytest.mark.parametrize("bad", ["", "fast", "-3min", "10parsecs", "0.5steps", "0.1img", "2M"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError, match="not understood|must be > 0|less than one (step|image)|2min .* 2Mimg"):
        parse_duration(bad)


# --------------------------------------------------------------------------------------------------- losses
def test_posterior_score_identity_gaussian():
    """Method §1.3: t^-2 (E[x0 | y_eff at sigma_eff] - x_t) is the score of q(x_t | y_sigma), exactly."""
    from ncvsd_cli.sampling.gaussian import GaussianPrior

    g = torch.Generator().manual_seed(1)
    mu, s = 0.2, 0.4
    prior = GaussianPrior(mu, s)
    y = torch.randn(5, 3, 4, 5, generator=g, dtype=torch.float64)
    x_t = torch.randn(5, 3, 4, 5, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.3, 1.0, 5.0, 80.0], dtype=torch.float64)
    t = torch.tensor([2.0, 0.05, 1.0, 0.4, 10.0], dtype=torch.float64)
    y_eff, sigma_eff = posterior_query(y, sigma, x_t, t)
    assert torch.allclose(sigma_eff, (sigma**-2 + t**-2) ** -0.5)
    score = (prior.teacher(y_eff, sigma_eff) - x_t) / t.view(-1, 1, 1, 1) ** 2
    # analytic: x0 | y ~ N(m, v), so x_t | y ~ N(m, v + t^2)
    sv = sigma.view(-1, 1, 1, 1)
    v = 1 / (1 / s**2 + 1 / sv**2)
    m = v * (mu / s**2 + y / sv**2)
    analytic = -(x_t - m) / (v + t.view(-1, 1, 1, 1) ** 2)
    assert torch.allclose(score, analytic, rtol=1e-9, atol=1e-9)


def test_vsd_gradient_is_score_difference():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    s0, s_phi = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    u, t = torch.tensor([0.3, -0.2]), torch.tensor([0.5, 2.0])
    vsd_loss(x, u, s0, s_phi, t).sum().backward()
    expected = 2 * edm_weight(t).view(-1, 1, 1, 1) * torch.exp(-u).view(-1, 1, 1, 1) * (s_phi - s0)
    assert torch.allclose(x.grad, expected, rtol=1e-5, atol=1e-6)


def test_uncertainty_loss_optimal_logvar():
    """The u-minimiser of sum(lambda e^-u err^2 + u) is log(mean(lambda err^2))."""
    d, x = torch.randn(1, 3, 5, 5), torch.randn(1, 3, 5, 5)
    sigma = torch.tensor([0.7])
    best = torch.log((edm_weight(sigma) * (d - x) ** 2).mean())
    losses = [uncertainty_loss(d, x, best + delta, sigma) for delta in (-0.1, 0.0, 0.1)]
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_discriminator_loss_scaled_by_dims():
    lr_, lf = torch.tensor([0.0]), torch.tensor([0.0])
    assert discriminator_loss(lr_, lf, 48).item() == pytest.approx(48 * math.log(2))


def test_sigma_grid_sampler():
    grid = karras_grid()
    assert len(grid) == 1000 and grid[0] == pytest.approx(80) and grid[-1] == pytest.approx(0.002)
    s = uniform_grid_sigma(4000, grid, torch.Generator().manual_seed(0))
    assert 2.0 < s.median() < 3.1  # docs/method.md §1.7: median about 2.52
    assert 0.55 < (s > 1).float().mean() < 0.64


# ----------------------------------------------------------------------------------------------------- data
def _write_pngs(folder, n=3, size=(20, 23)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        a = (rng.random((*size, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"img{i:02d}.png")
    return folder


def test_builtin_heldout_and_offline():
    assert set(D.BUILTIN_HELDOUT) <= set(D.BUILTIN_ALL)
    assert not set(D.BUILTIN_HELDOUT) & set(D.BUILTIN_TRAIN)
    with pytest.raises(ValueError, match="held-out"):
        D.builtin_source(16, names=("astronaut",))
    held = D.heldout_images(("chelsea",))
    assert held["chelsea"].shape == (1, 3, 300, 451) and -1 <= held["chelsea"].min() < held["chelsea"].max() <= 1
    src = D.builtin_source(16, names=("coins", "horse"))
    assert len(src) == 6 and src.get(0).dtype == np.uint8 and src.get(0).shape[2] == 3


def test_stream_deterministic_sharded_and_resumable(tmp_path):
    src = D.folder_or_zip_source(_write_pngs(tmp_path / "imgs"))
    one = D.ImageStream(src, 16, 4, seed=3)
    a, b = one.next(), one.next()
    assert a[0].shape == (4, 3, 16, 16) and a[0].abs().max() <= 1
    again = D.ImageStream(src, 16, 4, seed=3)
    again.load_state_dict({"position": 1, "seed": 3, "rank": 0, "world_size": 1})
    assert torch.equal(again.next()[0], b[0])
    r0, r1 = (D.ImageStream(src, 16, 2, seed=3, rank=r, world_size=2).next()[0] for r in (0, 1))
    assert torch.equal(torch.stack([r0[0], r1[0], r0[1], r1[1]]), a[0])  # items interleave over ranks
    assert not torch.equal(D.ImageStream(src, 16, 4, seed=4).next()[0], a[0])



@pytest.mark.parametrize("before, after", [(1, 2), (2, 1), (2, 4)])
def test_stream_resumes_on_another_world_size_at_the_next_global_batch(tmp_path, before, after):
    """The loop keeps the global batch (batch per rank x ranks); resuming on more or fewer ranks continues with
    the very next global batch: nothing replayed or skipped."""
    src = D.folder_or_zip_source(_write_pngs(tmp_path / "imgs", n=5))
    glob = 4

    def global_batch(streams):
        parts = [s.next()[0] for s in streams]
        return torch.stack([parts[k % len(parts)][k // len(parts)] for k in range(glob)])

    ref = [D.ImageStream(src, 16, glob, seed=3)]
    expected = [global_batch(ref) for _ in range(4)]
    old = [D.ImageStream(src, 16, glob // before, seed=3, rank=r, world_size=before) for r in range(before)]
    for _ in range(3):
        global_batch(old)
    new = [D.ImageStream(src, 16, glob // after, seed=3, rank=r, world_size=after) for r in range(after)]
    for r, s in enumerate(new):
        s.load_state_dict(old[0].state_dict() | {"rank": r})
    assert torch.equal(global_batch(new), expected[3])
    with pytest.raises(ValueError, match="whole number of batches"):
        D.ImageStream(src, 16, 8, seed=3).load_state_dict(old[0].state_dict())


def test_zip_with_labels(tmp_path):
    folder = _write_pngs(tmp_path / "imgs", n=2)
    zpath = tmp_path / "data.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)
        zf.writestr("dataset.json", '{"labels": [["img00.png", 1], ["img01.png", 0]]}')
    src = D.folder_or_zip_source(zpath)
    assert src.labels == [1, 0]
    x, y = D.ImageStream(src, 32, 3, seed=0).next()  # smaller than the crop: upscaled
    assert x.shape == (3, 3, 32, 32) and set(y.tolist()) <= {0, 1}
    with pytest.raises(ValueError):
        D.folder_or_zip_source(tmp_path / "missing")


# ------------------------------------------------------------------------------------------- teacher training
def _teacher_settings(tmp_path, out, **kw):
    from ncvsd_cli.training.teacher import TeacherSettings

    data = tmp_path / "imgs"
    if not data.exists():
        _write_pngs(data)
    base = dict(data=str(data), arch="tiny", out=str(tmp_path / out), batch=4, duration="4steps",
                snapshot="100steps", log_every=2, rampup_kimg=0.0, progress=False, device="cpu")
    return TeacherSettings(**{**base, **kw})


def test_teacher_loss_decreases(tmp_path):
    """A few dozen steps on one smooth image lower the loss on a fixed evaluation batch."""
    from PIL import Image

    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.teacher import TeacherTrainer

    img = tmp_path / "smooth"
    img.mkdir()
    yy, xx = np.mgrid[0:16, 0:16]
    a = np.stack([xx * 15, yy * 15, (xx + yy) * 7], -1).astype(np.uint8)
    Image.fromarray(a).save(img / "a.png")
    s = _teacher_settings(tmp_path, "t", data=str(img), batch=8, duration="40steps", xflip=False)
    tr = TeacherTrainer(s, distributed.init("cpu"))
    g = torch.Generator().manual_seed(0)
    x0 = D.ImageStream(tr.stream.source, 16, 16, seed=9, xflip=False).next()[0]
    sigma = torch.exp(torch.randn(16, generator=g) * 1.2 - 0.8)
    noise = torch.randn(x0.shape, generator=g)

    def eval_loss():
        with torch.no_grad():
            return ((tr.net(x0 + sigma.view(-1, 1, 1, 1) * noise, sigma) - x0) ** 2
                    * edm_weight(sigma).view(-1, 1, 1, 1)).mean().item()

    before = eval_loss()
    tr.run()
    assert eval_loss() < 0.75 * before
    assert (tmp_path / "t" / "snapshots").is_dir() and (tmp_path / "t" / "log.jsonl").stat().st_size > 0


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["trainer"]


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def test_teacher_resume_bit_for_bit(tmp_path):
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.training.teacher import train_teacher

    train_teacher(_teacher_settings(tmp_path, "full", duration="4steps"))
    train_teacher(_teacher_settings(tmp_path, "split", duration="2steps"))
    with pytest.raises(FileExistsError):
        train_teacher(_teacher_settings(tmp_path, "split", duration="4steps"))
    train_teacher(_teacher_settings(tmp_path, "split", duration="4steps", resume=True))
    _assert_same(_state(tmp_path / "full" / "state.pt"), _state(tmp_path / "split" / "state.pt"))
    _, cfg = load_checkpoint(str(latest_snapshot(tmp_path / "full", "teacher")))
    assert cfg["kind"] == "teacher" and cfg["provenance"]["steps"] == 4 and cfg["provenance"]["command"] is None
    assert "data_licences" not in cfg["provenance"]  # the folder declares no licence policy


def test_a_run_folder_in_use_is_refused_and_left_as_it_is(tmp_path, monkeypatch, capsys):
    """A second process training into a folder another one trains in (a --resume in another terminal) is refused
    before it builds its networks or reads or writes the run; once the first has ended, --resume goes on."""
    import subprocess
    import sys

    from ncvsd_cli.training.loop import RunInUse
    from ncvsd_cli.training.teacher import train_teacher

    train_teacher(_teacher_settings(tmp_path, "run", duration="1steps"))
    lock = tmp_path / "run" / ".ncvsd-run.lock"
    hold = ("import sys, time, filelock; l = filelock.FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); "
            "time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        state = (tmp_path / "run" / "state.pt").read_bytes()

        def no_build(*args, **kwargs):
            raise AssertionError("the networks were built before the folder was found in use")

        with monkeypatch.context() as m, pytest.raises(RunInUse, match="being trained in by another process"):
            m.setattr("ncvsd_cli.training.teacher.build", no_build)
            train_teacher(_teacher_settings(tmp_path, "run", duration="2steps", resume=True))
        assert (tmp_path / "run" / "state.pt").read_bytes() == state
    finally:
        holder.kill()
        holder.wait()
    train_teacher(_teacher_settings(tmp_path, "run", duration="2steps", resume=True))

    def no_locks(self, *args, **kwargs):
        raise OSError(38, "Function not implemented")

    import filelock
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app

    (tmp_path / "starting").mkdir()  # a run that has not written its first state: --resume is told it is in use
    with filelock.FileLock(str(tmp_path / "starting" / ".ncvsd-run.lock")):
        res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "starting"), "--resume", "--device", "cpu"])
    assert res.exit_code == 2 and "being trained in by another process" in res.stderr, res.output
    monkeypatch.setattr(filelock.FileLock, "acquire", no_locks)  # a file system without locks: trains, and says so
    train_teacher(_teacher_settings(tmp_path, "run", duration="3steps", resume=True))
    assert "cannot lock the run folder" in capsys.readouterr().err


def test_checkpoint_provenance_records_the_data_licence_policy(tmp_path):
    """A set whose dataset.json declares its licence policy (benchmarks/build_photos.py) passes it to checkpoints."""
    import json

    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.training.teacher import train_teacher

    _write_pngs(tmp_path / "imgs")
    (tmp_path / "imgs" / "dataset.json").write_text(json.dumps({"scales": [1.0], "licences": "permissive"}))
    train_teacher(_teacher_settings(tmp_path, "t", duration="1steps"))
    _, cfg = load_checkpoint(str(latest_snapshot(tmp_path / "t", "teacher")))
    assert cfg["provenance"]["data_licences"] == "permissive"
    assert cfg["provenance"]["data_files"] == D.folder_or_zip_source(tmp_path / "imgs").fingerprint


def test_data_fingerprint_names_the_files_by_content_not_by_place(tmp_path):
    """A copy elsewhere keeps the fingerprint (checkpoints trained on it say the same); an edited image changes it."""
    import shutil

    from PIL import Image

    _write_pngs(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for name in ("a", "b"):
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as zf:
            for f in sorted((tmp_path / name).iterdir()):
                zf.write(f, f.name)
    prints = {n: D.folder_or_zip_source(tmp_path / n).fingerprint for n in ("a", "b", "a.zip", "b.zip")}
    assert prints["a"] == prints["b"] and prints["a.zip"] == prints["b.zip"]
    count = len(list((tmp_path / "a").iterdir()))
    assert prints["a"].startswith(f"{count} files, sha256 ")
    first = min((tmp_path / "b").iterdir())
    img = np.asarray(Image.open(first)).copy()
    img[0, 0] = 255 - img[0, 0]
    Image.fromarray(img).save(first)
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:
        for f in sorted((tmp_path / "b").iterdir()):
            zf.write(f, f.name)
    assert D.folder_or_zip_source(tmp_path / "c.zip").fingerprint != prints["a.zip"]


def test_teacher_init_teacher_fine_tunes_from_a_checkpoint(tmp_path, capsys):
    """--init-teacher: the run starts from the checkpoint's weights (not fresh ones), takes its architecture when
    --arch is left out, records it in provenance (also after --resume), and refuses another architecture."""
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.teacher import TeacherTrainer, train_teacher

    train_teacher(_teacher_settings(tmp_path, "base", duration="2steps"))
    snap = latest_snapshot(tmp_path / "base", "teacher")
    base, _ = load_checkpoint(str(snap))
    tr = TeacherTrainer(_teacher_settings(tmp_path, "ft", arch=None, init_teacher=str(snap)), distributed.init("cpu"))
    fresh = TeacherTrainer(_teacher_settings(tmp_path, "fresh"), distributed.init("cpu"))
    got, ref = tr.net.state_dict(), base.state_dict()
    assert tr.arch == "tiny" and all(torch.equal(got[k], ref[k]) for k in ref)
    assert any(not torch.equal(fresh.net.state_dict()[k], ref[k]) for k in ref)  # the test can fail
    ema = dict(tr.ema.models(tr.net))[0.05].state_dict()
    assert all(torch.equal(ema[k], ref[k]) for k in ref)  # the EMA starts from the loaded weights too
    tr.run()
    train_teacher(_teacher_settings(tmp_path, "ft", arch=None, duration="6steps", resume=True))
    _, cfg = load_checkpoint(str(latest_snapshot(tmp_path / "ft", "teacher")))
    assert cfg["provenance"]["init_teacher"] == snap.name and cfg["provenance"]["steps"] == 6
    with pytest.raises(ValueError, match="differs? from the network being trained"):
        TeacherTrainer(_teacher_settings(tmp_path, "bad", arch="tiny-cond", init_teacher=str(snap)),
                       distributed.init("cpu"))
    for progress in (True, False):  # a run folder: its snapshot is named once, and not with -q (progress off)
        capsys.readouterr()
        TeacherTrainer(_teacher_settings(tmp_path, f"ft-{progress}", arch=None, init_teacher=str(tmp_path / "base"),
                                         progress=progress), distributed.init("cpu"))
        assert capsys.readouterr().err.count(f"its newest snapshot, snapshots/{snap.name}") == int(progress)


# ---------------------------------------------------------------------------------------------- distillation
@pytest.fixture
def tiny_teacher(tmp_path):
    from ncvsd_cli.checkpoints import save_checkpoint
    from ncvsd_cli.networks import build_network, network_config

    torch.manual_seed(0)
    cfg = network_config("teacher", "tiny")
    path = tmp_path / "teacher.safetensors"
    save_checkpoint(build_network(cfg), path, cfg)
    _write_pngs(tmp_path / "imgs")
    return path


def _distill_settings(tmp_path, teacher, out, **kw):
    from ncvsd_cli.training.distill import DistillSettings

    base = dict(teacher=str(teacher), data=str(tmp_path / "imgs"), out=str(tmp_path / out), batch=2,
                duration="3steps", snapshot="100steps", log_every=1, rampup_kimg=0.0, gan_warmup_kimg=0.002,
                progress=False, device="cpu", preview_count=2, g_lr_scale=1.0)
    return DistillSettings(**{**base, **kw})


def test_generator_init_equals_teacher_on_further_noised_input(tmp_path, tiny_teacher):
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.distill import Distiller

    d = Distiller(_distill_settings(tmp_path, tiny_teacher, "init"), distributed.init("cpu"))
    g = torch.Generator().manual_seed(0)
    y, z = torch.randn(3, 3, 16, 16, generator=g), torch.randn(3, 3, 16, 16, generator=g)
    sigma = torch.tensor([0.05, 1.0, 20.0])
    sigma_hat = (1 + d.gen.gamma) * sigma
    with torch.no_grad():
        out = d.gen(y, sigma, noise=z)
        ref = d.teacher(y + (sigma_hat**2 - sigma**2).sqrt().view(-1, 1, 1, 1) * z, sigma_hat)
        assert torch.allclose(out, ref, atol=1e-5)
        x_t = torch.randn(3, 3, 16, 16, generator=g)
        assert torch.allclose(d.score(x_t, sigma, y, sigma_hat), d.teacher(x_t, sigma), atol=1e-5)


@pytest.mark.parametrize("fp16, gamma", [(False, None), (True, None), (False, 0.1)])
def test_teacher_copy_generator_checkpoint(tmp_path, tiny_teacher, fp16, gamma):
    """benchmarks/teacher_copy_generator.py: the saved generator is D_0 on the further-noised input (§1.9), with
    the teacher's γ (the paper's 0.414) or the one given."""
    import subprocess
    import sys

    from ncvsd_cli.checkpoints import load_checkpoint, sha256_file

    out = tmp_path / "copy.safetensors"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "teacher_copy_generator.py"
    subprocess.run([sys.executable, str(script), str(tiny_teacher), str(out), *(["--fp16"] if fp16 else []),
                    *(["--gamma", str(gamma)] if gamma else [])], check=True, capture_output=True)
    gen, cfg = load_checkpoint(str(out), kind="generator")
    assert gen.gamma == pytest.approx(gamma or 0.414) and cfg["gamma"] == pytest.approx(gamma or 0.414)
    teacher, _ = load_checkpoint(str(tiny_teacher), kind="teacher")
    prov = cfg["provenance"]
    assert prov["kimg"] == 0 and prov["teacher"] == tiny_teacher.name
    assert prov["teacher_sha256"] == sha256_file(tiny_teacher) and "not distilled" in prov["trainer"]
    g = torch.Generator().manual_seed(1)
    y, z = torch.randn(2, 3, 16, 16, generator=g), torch.randn(2, 3, 16, 16, generator=g)
    sigma = torch.tensor([0.1, 2.0])
    sigma_hat = (1 + gen.gamma) * sigma
    with torch.no_grad():
        ref = teacher(y + (sigma_hat**2 - sigma**2).sqrt().view(-1, 1, 1, 1) * z, sigma_hat)
        assert torch.allclose(gen.float()(y, sigma, noise=z), ref.float(), atol=2e-2 if fp16 else 1e-5)


def test_distill_finite_changes_generator_and_resumes(tmp_path, tiny_teacher):
    import json

    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.training.distill import distill

    distill(_distill_settings(tmp_path, tiny_teacher, "full", duration="3steps"))
    records = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss_score" in r]
    assert len(steps) == 3 and "loss_gan" in steps[-1]
    for r in steps:
        assert all(math.isfinite(r[k]) for k in ("loss_score", "loss_disc", "loss_vsd"))
    assert steps[-1]["mixing_max_score"] > 0 and steps[-1]["mixing_max_generator"] > 0  # y reaches both decoders
    state = _state(tmp_path / "full" / "state.pt")
    teacher, _ = load_checkpoint(str(tiny_teacher))
    enc = {k: v for k, v in state["gen"].items() if k.startswith("model.enc.")}
    assert any(not torch.equal(v, teacher.unet.state_dict()[k[len("model.enc."):]]) for k, v in enc.items())
    assert len(list((tmp_path / "full" / "previews").glob("0000000.*-nfe1.png"))) == 1
    _, cfg = load_checkpoint(str(latest_snapshot(tmp_path / "full", "generator")))
    assert cfg["kind"] == "generator" and cfg["provenance"]["teacher"] == "teacher.safetensors"
    run_dir_as_checkpoint(tmp_path / "full", tiny_teacher)

    distill(_distill_settings(tmp_path, tiny_teacher, "split", duration="2steps"))
    distill(_distill_settings(tmp_path, tiny_teacher, "split", duration="3steps", resume=True))
    _assert_same(state, _state(tmp_path / "split" / "state.pt"))


def run_dir_as_checkpoint(run_dir, teacher_file):
    """A run folder given where a checkpoint is expected: its newest snapshot of the kind needed (EMA 0.05), or,
    without a kind, of the one kind it holds; a run of the other kind says what it holds."""
    import json
    import shutil

    from PIL import Image
    from typer.testing import CliRunner

    from ncvsd_cli.checkpoints import CheckpointError, resolve_checkpoint, run_snapshot
    from ncvsd_cli.cli import app

    newest = latest_snapshot(run_dir, "generator")
    assert resolve_checkpoint(run_dir, kind="generator") == resolve_checkpoint(run_dir) == newest
    assert newest.name.endswith("-0.050.safetensors")
    with pytest.raises(CheckpointError, match="is a run of a generator; a teacher is needed here: give an `ncvsd "
                                              "train` run or a teacher checkpoint"):
        resolve_checkpoint(run_dir, kind="teacher")
    with pytest.raises(CheckpointError, match=r"no generator snapshot with EMA sigma_rel 0.200 \(EMA lengths there: "
                                              r"0.050, 0.100; name a snapshot file"):
        run_snapshot(run_dir, "generator", 0.2)
    res = CliRunner().invoke(app, ["sample", "-c", str(run_dir), "--seeds", "0-1", "-o", str(run_dir / "s.png")])
    assert res.exit_code == 0 and res.stderr.count(f"its newest snapshot, snapshots/{newest.name}") == 1, res.output
    res = CliRunner().invoke(app, ["sample", "-c", str(run_dir), "--seeds", "0", "-o", str(run_dir / "s/"), "-q",
                                   "--json"])  # the snapshot used, in the record; -q: no note
    assert res.exit_code == 0 and res.stderr == "" and json.loads(res.stdout.splitlines()[-1])["checkpoint"] == str(newest), res.output
    res = CliRunner().invoke(app, ["sample", "-c", str(run_dir), "-o", str(run_dir / "s.png"), "--skip-existing"])
    assert res.exit_code == 2 and "a grid is one picture of all seeds" in res.stderr  # it may hold other seeds
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        resolve_checkpoint(teacher_file.parent, kind="generator")  # a folder of checkpoints, not a run
    other = teacher_file.parent / "other"  # a snapshots/ folder of files not named as a run names them: not a run
    (other / "snapshots").mkdir(parents=True)
    shutil.copy(teacher_file, other / "snapshots" / "my-model.safetensors")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file; in it: snapshots/my-model"):
        resolve_checkpoint(other)
    old = teacher_file.parent / "v010"  # a run of version 0.1.0 named snapshots by whole kimg
    (old / "snapshots").mkdir(parents=True)
    shutil.copy(newest, old / "snapshots" / "generator-0000170-0.050.safetensors")
    assert resolve_checkpoint(old, kind="generator").name == "generator-0000170-0.050.safetensors"
    img = teacher_file.parent / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    for quiet in ([], ["-q"]):  # restore names the snapshot, and not with -q
        res = CliRunner().invoke(app, ["restore", str(img), "-c", str(run_dir), "--task", "denoise", "--sigma-y",
                                       "0.1", "-o", str(teacher_file.parent / f"r{len(quiet)}.png"), *quiet])
        assert res.exit_code == 0 and res.stderr.count("its newest snapshot") == 1 - len(quiet), res.output


def test_a_distill_run_keeps_its_teacher_file_and_bench_finds_it(tmp_path, monkeypatch):
    """--resume of a distillation from a teacher run folder goes on with the snapshot it began with (a newer one
    of the teacher run was taken silently); bench finds a run's generator's teacher through the run's record; a
    teacher run is no --out of distill."""
    import json
    import shutil

    from ncvsd_cli.bench.runner import _generators_teacher
    from ncvsd_cli.checkpoints import load_checkpoint, resolve_checkpoint
    from ncvsd_cli.training.distill import distill
    from ncvsd_cli.training.teacher import train_teacher

    train_teacher(_teacher_settings(tmp_path, "t", duration="1steps"))
    first = latest_snapshot(tmp_path / "t", "teacher")
    distill(_distill_settings(tmp_path, tmp_path / "t", "d", duration="1steps"))
    train_teacher(_teacher_settings(tmp_path, "t", duration="2steps", resume=True))
    assert latest_snapshot(tmp_path / "t", "teacher") != first
    distill(_distill_settings(tmp_path, tmp_path / "t", "d", duration="2steps", resume=True))
    snap = latest_snapshot(tmp_path / "d", "generator")
    _, cfg = load_checkpoint(str(snap))
    assert cfg["provenance"]["teacher"] == first.name and cfg["provenance"]["steps"] == 2
    assert _generators_teacher(cfg, str(snap)) == str(first)  # in no search location: found through run.json
    assert Path(json.loads((tmp_path / "d" / "run.json").read_text())["teacher_path"]).is_absolute()
    (tmp_path / "cwd").mkdir()  # a different teacher of the same generic name, found by name: not taken
    train_teacher(_teacher_settings(tmp_path, "other", duration="1steps", seed=7))
    shutil.copy(latest_snapshot(tmp_path / "other", "teacher"), tmp_path / "cwd" / first.name)
    monkeypatch.chdir(tmp_path / "cwd")
    assert resolve_checkpoint(first.name).resolve() == (tmp_path / "cwd" / first.name)  # found by its name
    assert _generators_teacher(cfg, None) is None and _generators_teacher(cfg, str(snap)) == str(first)
    second = latest_snapshot(tmp_path / "t", "teacher")  # another --teacher typed on a resume holds from then on
    for steps in (3, 4):
        distill(_distill_settings(tmp_path, second, "d", duration=f"{steps}steps", resume=True))
        _, cfg = load_checkpoint(str(latest_snapshot(tmp_path / "d", "generator")))
        assert cfg["provenance"]["teacher"] == second.name and cfg["provenance"]["steps"] == steps
    with pytest.raises(FileExistsError, match="holds an 'ncvsd train' run; choose another --out"):
        distill(_distill_settings(tmp_path, first, "t", duration="1steps"))


def test_a_library_resume_without_a_duration_keeps_the_runs(tmp_path):
    """TeacherSettings(resume=True) without duration: the run's recorded one (its default, 30 minutes, replaced
    the record and every later resume trained on)."""
    import json

    from ncvsd_cli.training.teacher import train_teacher

    train_teacher(_teacher_settings(tmp_path, "r", duration="2steps"))
    train_teacher(_teacher_settings(tmp_path, "r", duration=None, resume=True))
    assert torch.load(tmp_path / "r" / "state.pt", weights_only=True)["loop"]["step"] == 2
    assert json.loads((tmp_path / "r" / "run.json").read_text())["duration"] == "2steps"


def test_command_line_is_one_to_type_again(monkeypatch):
    """Under `python -m` or torchrun the recorded command was `__main__.py train ...`; under torchrun it is
    torchrun's command line as typed (--standalone was dropped)."""
    import os
    import sys

    from ncvsd_cli.training import loop
    from ncvsd_cli.training.loop import command_line

    real_launcher_argv = loop.launcher_argv
    for var in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/ncvsd", "train", "--out", "a b"])
    assert command_line() == "ncvsd train --out 'a b'"
    monkeypatch.setattr(sys, "argv", ["/src/ncvsd_cli/__main__.py", "train", "--out", "r"])
    assert command_line() == "python -m ncvsd_cli train --out r"
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(loop, "launcher_argv", lambda: None)  # no /proc: rebuilt from the environment
    assert command_line() == "torchrun --nproc_per_node=2 --nnodes=2 -m ncvsd_cli train --out r"
    typed = ["--standalone", "--nproc_per_node", "2", "-m", "ncvsd_cli", "train", "--out", "r"]
    for launcher, shown in ((["/v/bin/python3", "/v/bin/torchrun", *typed], "torchrun"),
                            (["python3", "-m", "torch.distributed.run", *typed], "python -m torch.distributed.run")):
        monkeypatch.setattr(loop, "launcher_argv", lambda launcher=launcher: launcher)  # torchrun's, as typed
        assert command_line() == f"{shown} --standalone --nproc_per_node 2 -m ncvsd_cli train --out r"
    monkeypatch.setattr(loop, "launcher_argv", lambda: ["bash", "-c", "other"])  # not the launcher of this command
    assert command_line() == "torchrun --nproc_per_node=2 --nnodes=2 -m ncvsd_cli train --out r"
    if sys.platform == "linux":  # /proc is read: this interpreter's own command line
        assert Path(real_launcher_argv(os.getpid())[0]).name.startswith("python")


def test_distill_without_gan_skips_the_discriminator(tmp_path, tiny_teacher):
    """gan_loss_scaling 0: the discriminator keeps its teacher initialisation while the generator trains."""
    import json

    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.distill import Distiller

    d = Distiller(_distill_settings(tmp_path, tiny_teacher, "nogan", duration="2steps", gan_warmup_kimg=0.0,
                                    gan_loss_scaling=0.0), distributed.init("cpu"))
    disc0 = {k: v.clone() for k, v in d.disc.state_dict().items()}
    gen0 = {k: v.clone() for k, v in d.gen.state_dict().items()}
    d.run()
    assert all(torch.equal(v, disc0[k]) for k, v in d.disc.state_dict().items())
    assert any(not torch.equal(v, gen0[k]) for k, v in d.gen.state_dict().items())
    logs = [json.loads(line) for line in (tmp_path / "nogan" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "loss_vsd" in r]
    assert steps and all("loss_disc" not in r and "loss_gan" not in r and r["gan"] is False for r in steps)


def test_distill_init_generator_continues_from_a_generator(tmp_path, tiny_teacher):
    from ncvsd_cli.checkpoints import CheckpointError, load_checkpoint
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.distill import Distiller, distill

    distill(_distill_settings(tmp_path, tiny_teacher, "first", duration="2steps"))
    snap = latest_snapshot(tmp_path / "first", "generator")
    first, _ = load_checkpoint(str(snap))
    d = Distiller(_distill_settings(tmp_path, tiny_teacher, "second", init_generator=str(snap)),
                  distributed.init("cpu"))
    fresh = Distiller(_distill_settings(tmp_path, tiny_teacher, "third"), distributed.init("cpu"))
    got, ref, teacher_init = d.gen.state_dict(), first.state_dict(), fresh.gen.state_dict()
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert any(not torch.equal(got[k], teacher_init[k]) for k in ref)  # the test can fail
    assert d.provenance()["init_generator"] == snap.name
    with pytest.raises(CheckpointError, match="generator is needed"):
        Distiller(_distill_settings(tmp_path, tiny_teacher, "bad", init_generator=str(tiny_teacher)),
                  distributed.init("cpu"))


def test_distill_continues_a_generator_with_its_own_gamma(tmp_path, tiny_teacher):
    """The shipped generator is a teacher copy at γ 0.1 (the teacher config says 0.414): continuing from it keeps
    its γ (`distill --init-generator builtin64-generator` was refused for the mismatch), in its snapshots too."""
    import json

    from ncvsd_cli.checkpoints import read_config, save_checkpoint
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.distill import Distiller, distill, teacher_copy_generator

    gen, cfg = teacher_copy_generator(str(tiny_teacher), gamma=0.1)
    save_checkpoint(gen, tmp_path / "copy.safetensors", cfg)
    d = Distiller(_distill_settings(tmp_path, tiny_teacher, "cont", init_generator=str(tmp_path / "copy.safetensors")),
                  distributed.init("cpu"))
    assert d.configs["generator"]["gamma"] == 0.1 and d.configs["score"].get("gamma") != 0.1
    assert all(torch.equal(v, gen.state_dict()[k]) for k, v in d.gen.state_dict().items())
    del d
    distill(_distill_settings(tmp_path, tiny_teacher, "cont2", init_generator=str(tmp_path / "copy.safetensors"),
                              duration="1steps"))
    assert read_config(latest_snapshot(tmp_path / "cont2", "generator"))["gamma"] == 0.1
    # a bare --resume keeps it (it built the generator at the teacher's γ 0.414), also for a run.json of an older
    # version without generator_noise (read from the run's newest snapshot), and the init provenance stays
    for steps, older in (("2steps", False), ("3steps", True)):
        if older:
            record = json.loads((tmp_path / "cont2" / "run.json").read_text())
            del record["generator_noise"], record["init_provenance"]
            (tmp_path / "cont2" / "run.json").write_text(json.dumps(record))
        distill(_distill_settings(tmp_path, tiny_teacher, "cont2", duration=steps, resume=True))
        cfg = read_config(latest_snapshot(tmp_path / "cont2", "generator"))
        assert cfg["gamma"] == 0.1 and cfg["provenance"]["steps"] == int(steps[0]), cfg
        assert cfg["provenance"]["init_generator"] == "copy.safetensors", cfg["provenance"]


def test_distill_defaults_to_the_teachers_data_and_warns_of_a_replaced_teacher(tmp_path, capsys):
    """Without --data a distillation trains on the teacher's own data (it took `builtin` silently); on --resume a
    teacher file replaced at the pinned path is named in a warning, also when quiet (it went on silently)."""
    import json
    import shutil

    from ncvsd_cli.training.distill import distill
    from ncvsd_cli.training.teacher import train_teacher

    train_teacher(_teacher_settings(tmp_path, "t", duration="1steps"))
    teacher_data = json.loads((tmp_path / "t" / "run.json").read_text())["data"]
    first = latest_snapshot(tmp_path / "t", "teacher")
    distill(_distill_settings(tmp_path, first, "d", duration="1steps", data=None, progress=True))
    record = json.loads((tmp_path / "d" / "run.json").read_text())
    err = capsys.readouterr().err
    assert record["data"] == teacher_data and "teacher's training data" in err and "other files" not in err
    _write_pngs(tmp_path / "other-imgs", n=4)  # other files: the distillation is told (it learns the teacher's)
    distill(_distill_settings(tmp_path, first, "d2", duration="1steps", data=str(tmp_path / "other-imgs")))
    assert "the teacher was trained on other files" in capsys.readouterr().err
    train_teacher(_teacher_settings(tmp_path, "other", duration="1steps", seed=7))
    shutil.copy(latest_snapshot(tmp_path / "other", "teacher"), first)  # replaced at the pinned path
    distill(_distill_settings(tmp_path, first, "d", duration="2steps", resume=True, progress=False))
    assert "is not the file this run began with" in capsys.readouterr().err
    distill(_distill_settings(tmp_path, first, "d", duration="3steps", resume=True, progress=False))
    assert "is not the file this run began with" in capsys.readouterr().err  # the run's first teacher stays


def test_a_distill_step_that_cannot_read_an_image_saves_the_last_step_exactly(tmp_path, monkeypatch):
    """An image that fails to decode while a distillation step draws its second batch: the step draws all its
    batches before any update, so the state saved is the previous step's with the data stream put back, and a
    --resume once the file is fixed ends bit for bit where an uninterrupted run does (it saved a half-done step)."""
    from ncvsd_cli.images import ImageError
    from ncvsd_cli.training.distill import Distiller, distill
    from ncvsd_cli.training.loop import DataError
    from ncvsd_cli.training.teacher import train_teacher

    train_teacher(_teacher_settings(tmp_path, "t", duration="1steps"))
    teacher = latest_snapshot(tmp_path / "t", "teacher")
    distill(_distill_settings(tmp_path, teacher, "full", duration="3steps"))
    real = Distiller._fresh

    def failing(self, step, update):
        if step == 2 and update == 1:
            raise ImageError("x.png: cannot decode image (truncated or corrupt)")
        return real(self, step, update)

    monkeypatch.setattr(Distiller, "_fresh", failing)
    with pytest.raises(DataError, match="x.png.*the state at step 2 is saved"):
        distill(_distill_settings(tmp_path, teacher, "cut", duration="3steps"))
    state = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    assert state["loop"]["step"] == 2 and state["trainer"]["data"]["position"] == 2 * 3
    monkeypatch.setattr(Distiller, "_fresh", real)
    distill(_distill_settings(tmp_path, teacher, "cut", duration="3steps", resume=True))
    full, cut = (torch.load(tmp_path / r / "state.pt", weights_only=True)["trainer"] for r in ("full", "cut"))
    for net in ("gen", "score", "disc"):
        for k, v in full[net].items():
            assert torch.equal(v, cut[net][k]), (net, k)


@pytest.mark.parametrize("spec", ["gpu", "mps", "cuda:x", ""])
def test_a_training_device_outside_the_documented_ones_is_a_clear_value_error(spec):
    """`train --device gpu` ended in "internal error: RuntimeError" (torch.device's), and mps went ahead untested."""
    from ncvsd_cli.training.distributed import resolve_device

    with pytest.raises(ValueError, match="--device"):
        resolve_device(spec)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_truncated_zip_is_named_damaged_not_not_a_zip(tmp_path):
    """A zip cut short by a copy or download was "neither 'builtin', 'photos', a folder of images nor a zip file"."""
    whole = tmp_path / "set.zip"
    with zipfile.ZipFile(whole, "w") as zf:
        for i in range(4):
            zf.writestr(f"{i}.bin", np.random.default_rng(i).bytes(4000))
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[:5000])
    with pytest.raises(ValueError, match="damaged or incomplete zip file"):
        D.folder_or_zip_source(cut)


def test_an_overflowing_learning_rate_is_refused_by_name():
    """--lr 1e38 ended in "internal error: RuntimeError: value cannot be converted to type float"."""
    from ncvsd_cli.training.teacher import TeacherSettings

    with pytest.raises(ValueError, match=r"--lr must be <= 1e\+30"):
        TeacherSettings(data="builtin", out="x", lr=1e38).check()


def test_labels_of_files_not_in_the_set_are_warned_of(tmp_path):
    """dataset.json labelling a file that is not there (removed or renamed) trained without a word."""
    import json

    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["0.png", 0], ["1.png", 1], ["gone.png", 1]]}))
    source = D.folder_or_zip_source(tmp_path)
    assert source.labels == [0, 1] and "labels 1 file(s) that are not in" in source.warning
    assert "gone.png" in source.warning


def test_a_folder_named_like_a_set_is_said_not_silently_passed_over(tmp_path, monkeypatch):
    """`--data photos` with a folder ./photos here failed with "no photos set at ~/.cache/..." alone; the
    folder, which `--data ./photos` trains on, is now named in the error, and beside the builtin set in its
    warning."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(D.PHOTOS_ENV, str(tmp_path / "absent.zip"))
    for name in ("photos", "builtin"):
        (tmp_path / name).mkdir()
    with pytest.raises(ValueError, match=r"no photos set at .*absent.zip.*\./photos here is not used: --data "
                                         r"\./photos trains on it"):
        D.open_source("photos", 32)
    assert "./builtin here is not used" in D.open_source("builtin", 32).warning
    (tmp_path / "photos").rmdir()
    with pytest.raises(ValueError) as err:
        D.open_source("photos", 32)
    assert "here is not used" not in str(err.value)


def test_every_unreadable_training_image_is_named_at_once(tmp_path):
    """Only the first unreadable file of a training folder was named; fixing it revealed the next. All are now
    counted, the first five named, the rest counted."""
    from PIL import Image

    from ncvsd_cli.images import ImageError

    Image.new("RGB", (40, 40)).save(tmp_path / "good.png")
    for i in range(7):
        (tmp_path / f"bad{i}.png").write_bytes(b"no image")
    with pytest.raises(ImageError, match=r"7 of the 8 images of .* cannot be read \(their headers\): bad0.png "
                                         r"\(not an image format Pillow reads\); bad1.png .*bad4.png \(.*\), and 2 "
                                         r"more; move"):
        D.folder_or_zip_source(tmp_path, 32)


def test_a_teachers_photos_set_made_elsewhere_is_taken_here_or_its_build_is_said(tmp_path, monkeypatch, capsys):
    """The shipped teacher records the photos set at its maker's path (/tmp/photos-perm.zip): distilling from it
    fell back to builtin with no word of the set; now the photos set built here is used, or its build is said."""
    from ncvsd_cli.training.distill import teacher_data

    monkeypatch.setenv(D.PHOTOS_ENV, str(tmp_path / "photos.zip"))
    assert teacher_data("/nowhere/photos-perm.zip", photos_set=True) == "builtin"
    assert "it was a photos set: build one with `python -m ncvsd_cli.training.photos" in capsys.readouterr().err
    assert teacher_data("/nowhere/own.zip") == "builtin" and "photos set" not in capsys.readouterr().err
    (tmp_path / "photos.zip").write_bytes(b"")
    assert teacher_data("/nowhere/photos-perm.zip", photos_set=True) == "photos"
    assert "distilling on the photos set here, --data photos" in capsys.readouterr().err
