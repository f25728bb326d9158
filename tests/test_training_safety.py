"""`ncvsd train` / `ncvsd distill` as a user and a security reviewer would drive them: resume states that carry
code or are damaged, Ctrl-C and SIGTERM, the --arch flag (and its deprecated --preset alias), progress output on
terminals and elsewhere. Tiny networks (the `tiny` architecture, 16 px) and a few steps on CPU."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pickle
import pty
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ncvsd_cli.cli import app
from ncvsd_cli.progress import StatusReporter
from ncvsd_cli.training.common import snapshot_path

runner = CliRunner()
TINY = ["--arch", "tiny", "--batch", "2", "--snapshot", "1000steps", "--log-every", "1", "--rampup-kimg", "0",
        "--device", "cpu"]


def _images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((19, 23, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder, a teacher run directory after 1 step written by `ncvsd train`)."""
    root = tmp_path_factory.mktemp("train")
    data = _images(root / "imgs")
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(root / "run"), "--duration", "1steps",
                              "--quiet", *TINY])
    assert res.exit_code == 0, res.output
    return data, root / "run"


def _resume(data: Path, run: Path, *extra: str, steps: int = 2):
    args = ["train", "--data", str(data), "--out", str(run), "--resume", "--duration", f"{steps}steps", "--quiet",
            *TINY, *extra]
    return runner.invoke(app, args)


# ------------------------------------------------------------------------------------------- resume safety
class _RunsCode:
    """Unpickling this object runs a shell command (what a crafted state.pt could do)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _zip_state(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _bad_state(kind: str, good: bytes, marker: Path) -> bytes:
    code = _RunsCode(f"touch {marker}")
    if kind == "code":
        return _zip_state(code)
    if kind == "code-inside-a-state":
        state = torch.load(io.BytesIO(good), weights_only=True)
        state["trainer"]["extra"] = code
        return _zip_state(state)
    if kind == "code-plain-pickle":
        return pickle.dumps({"loop": code})
    if kind == "random-bytes":
        return np.random.default_rng(0).bytes(3000)
    if kind == "empty":
        return b""
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "foreign-dict":
        return _zip_state({"weights": torch.ones(3), "step": 4})
    if kind == "distill-state":
        state = torch.load(io.BytesIO(good), weights_only=True)
        state["loop"]["name"] = "distill"
        return _zip_state(state)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["code", "code-inside-a-state", "code-plain-pickle", "random-bytes", "empty",
                                  "truncated", "foreign-dict", "distill-state"])
def test_bad_resume_state_is_refused_without_running_code(tmp_path, trained, kind):
    data, run = trained
    copy, marker = tmp_path / "run", tmp_path / "marker"
    shutil.copytree(run, copy)
    (copy / "state.pt").write_bytes(_bad_state(kind, (run / "state.pt").read_bytes(), marker))
    res = _resume(data, copy)
    assert not marker.exists(), "loading the state ran code"
    assert res.exit_code == 3, res.output
    assert res.stderr.startswith("ncvsd: error:") and res.stderr.count("\n") == 1, res.stderr
    assert "state" in res.stderr and "Traceback" not in res.output
    if kind in ("random-bytes", "empty", "truncated"):  # the run's snapshots are a way on: named
        assert f"--init-teacher / --init-generator {copy} start it from the run's newest snapshot" in res.stderr


def test_state_that_does_not_fit_the_network_is_exit_3(tmp_path, trained):
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "run.json").unlink()  # nothing records the architecture: --arch tiny-cond is taken at its word
    res = _resume(data, copy, "--arch", "tiny-cond")
    assert res.exit_code == 3 and "does not fit" in res.stderr and res.stderr.count("\n") == 1, res.output
    assert "run.json is missing, so the run's architecture is unknown: give its --arch (this one: tiny-cond)" \
        in res.stderr, res.output


def test_a_lost_run_record_is_said_and_its_batch_not_replaced_by_the_default(tmp_path, trained):
    """Without run.json a resume took the default batch (32 where the run trained at 8) without a word, and never
    wrote the record back."""
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "run.json").unlink()
    batch = json.loads((run / "run.json").read_text())["batch"]
    res = runner.invoke(app, ["train", "--out", str(copy), "--resume", "--duration", "2steps", "--quiet"])
    assert res.exit_code == 2 and "run.json, the run's recorded options, is missing" in res.stderr, res.output
    res = _resume(data, copy, "--batch", str(2 * batch))
    assert res.exit_code == 2 and f"trained at batch {batch}, not {2 * batch}: give --batch {batch}" in res.stderr
    assert not (copy / "run.json").exists()
    res = _resume(data, copy, "--batch", str(batch))
    assert res.exit_code == 0 and "run.json is missing: the run's recorded options are lost" in res.stderr
    assert json.loads((copy / "run.json").read_text())["batch"] == batch  # recorded for the next resume


def test_state_holds_only_tensors_and_plain_containers(trained):
    _, run = trained
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["loop"]["step"] == 1 and state["loop"]["name"] == "train"


def _lrs(run: Path) -> list[float]:
    return [r["lr"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "lr" in r]


def test_resume_keeps_the_runs_recipe_and_records_what_is_typed_again(tmp_path, trained):
    """--resume without --lr/--data/--batch continues with the run's own (not the option defaults); a value typed
    again replaces the recorded one with a note, also for later resumes; a new run without --data is a usage error."""
    data, _ = trained
    run = tmp_path / "run"
    first = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--duration", "1steps", "--quiet",
                                *TINY, "--lr", "0.004", "--p-std", "1.2"])
    assert first.exit_code == 0, first.output
    bare = ["train", "--out", str(run), "--resume", "--quiet", "--device", "cpu"]
    res = runner.invoke(app, [*bare, "--duration", "2steps"])  # no --data, --batch, --lr, --arch
    assert res.exit_code == 0, res.output
    assert _lrs(run) == [0.004, 0.004] and "replaces" not in res.stderr
    state = torch.load(run / "state.pt", weights_only=True)["loop"]
    assert state["step"] == 2 and state["batch"] == 2
    res = runner.invoke(app, [*bare, "--duration", "3steps", "--lr", "0.002"])
    assert res.exit_code == 0, res.output
    assert "--lr 0.002: replaces the run's recorded 0.004" in res.stderr
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["lr"] == 0.002 and recorded["p_std"] == 1.2 and recorded["overrides"][0]["lr"] == [0.004, 0.002]
    res = runner.invoke(app, [*bare, "--duration", "4steps"])
    assert res.exit_code == 0 and _lrs(run) == [0.004, 0.004, 0.002, 0.002], res.output
    res = runner.invoke(app, [*bare, "--duration", "5steps", "--no-xflip"])  # a switch said as typed
    assert res.exit_code == 0 and "--resume with --no-xflip: replaces the run's recorded --xflip" in res.stderr, \
        res.output
    new = runner.invoke(app, ["train", "--out", str(tmp_path / "new"), "--duration", "1steps", *TINY])
    assert new.exit_code == 2 and "missing option --data" in new.stderr, new.output


def test_a_failed_resume_leaves_the_runs_record_alone(tmp_path, trained):
    """--resume with another --arch is a usage error that leaves run.json as it was (it used to record the new
    architecture first, so a plain --resume failed from then on); a typed --lr is recorded once the state loads."""
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = (copy / "run.json").read_text()
    bad = _resume(data, copy, "--arch", "tiny-cond")
    assert bad.exit_code == 2 and "differs from the architecture tiny" in bad.stderr, bad.output
    assert "replaces" not in bad.stderr
    assert (copy / "run.json").read_text() == before
    res = runner.invoke(app, ["train", "--out", str(copy), "--resume", "--quiet", "--device", "cpu",
                              "--duration", "2steps", "--lr", "0.003"])
    assert res.exit_code == 0, res.output
    assert json.loads((copy / "run.json").read_text())["overrides"][0]["lr"][1] == 0.003
    recorded = (copy / "run.json").read_text()
    done = runner.invoke(app, ["train", "--out", str(copy), "--resume", "--device", "cpu", "--duration", "1steps",
                               "--lr", "0.5"])  # it did nothing: it records nothing (a later resume ran at 0.5)
    assert done.exit_code == 0 and "nothing to do: the run is at step 2" in done.stderr, done.output
    assert (copy / "run.json").read_text() == recorded and "replaces" not in done.stderr
    other = runner.invoke(app, ["distill", "--out", str(copy), "--resume", "--device", "cpu"])
    assert other.exit_code == 2 and "holds an 'ncvsd train' run (a teacher)" in other.stderr, other.output
    assert f"ncvsd distill --teacher {copy}" in " ".join(other.stderr.split())  # it said "missing --teacher"
    none = runner.invoke(app, ["train", "--out", str(tmp_path / "nothing"), "--resume", "--device", "cpu"])
    assert none.exit_code == 2 and "holds no run to continue" in none.stderr, none.output
    for res in (other, none):  # the summary line every other refusal of a run gives (stdout was empty)
        summary = json.loads(res.stdout)
        assert summary["exit_code"] == 2 and summary["error"] in " ".join(res.stderr.split()), res.output


def test_a_bare_resume_keeps_the_runs_duration_and_a_refused_one_prints_no_override(tmp_path, trained):
    """--resume without --duration takes the run's recorded one (a count: the run's total, so a finished run has
    nothing to do, its files untouched; it trained 30 more minutes at the option's default); a new --duration is recorded silently
    (no override note or entry). --seed or a --batch that cannot continue the data position are refused without
    first claiming to replace the record."""
    _, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    bare = ["train", "--out", str(copy), "--resume", "--device", "cpu"]
    files = {p: p.stat().st_mtime_ns for p in [*copy.rglob("*.safetensors"), copy / "state.pt", copy / "log.jsonl"]}
    res = runner.invoke(app, bare)
    assert res.exit_code == 0 and "nothing to do: the run is at step 1" in res.stderr, res.output
    assert json.loads(res.stdout)["step"] == 1 and all(p.stat().st_mtime_ns == t for p, t in files.items())
    res = runner.invoke(app, [*bare, "--duration", "2steps", "--quiet"])
    assert res.exit_code == 0 and res.stderr == "", res.output
    recorded = json.loads((copy / "run.json").read_text())
    assert recorded["duration"] == "2steps" and "overrides" not in recorded
    assert "nothing to do: the run is at step 2" in runner.invoke(app, bare).stderr
    quiet = runner.invoke(app, [*bare, "--quiet"])  # said nothing at all: a script could not tell
    assert "nothing to do: the run is at step 2" in quiet.stderr and json.loads(quiet.stdout)["nothing_to_do"]
    seed = runner.invoke(app, [*bare, "--seed", "5", "--duration", "3steps"])
    assert seed.exit_code == 2 and "a run keeps its seed" in seed.stderr and "replaces" not in seed.stderr
    batch = runner.invoke(app, [*bare, "--batch", "3", "--duration", "3steps"])  # 4 images done: not 3s
    assert batch.exit_code != 0 and "whole number of batches" in batch.stderr, batch.output
    assert "replaces" not in batch.stderr and json.loads((copy / "run.json").read_text()) == recorded


def test_snapshot_names_are_unique_to_the_image_and_sort_in_training_order(tmp_path):
    """Two snapshots of a short run within one kimg were both named -0000000- (the first was replaced)."""
    kimgs = [0.018, 0.035, 0.5, 1.0, 54.5, 54.501, 1234.0]
    names = [snapshot_path(tmp_path, "teacher", k, 0.05).name for k in kimgs]
    assert len(set(names)) == len(names) and sorted(names) == names
    assert names[4] == "teacher-0000054.500-0.050.safetensors"
    old_style = "teacher-0000054-0.050.safetensors"  # runs of earlier versions resume among the new names
    assert sorted([names[4], old_style, names[3]]) == [names[3], old_style, names[4]]


# --------------------------------------------------------------------------------------------- --arch flag
def test_resume_takes_the_runs_architecture_also_from_older_run_dirs(tmp_path, trained):
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    recorded = json.loads((copy / "run.json").read_text())
    assert recorded["arch"] == "tiny"
    recorded["preset"] = recorded.pop("arch")  # what older versions wrote
    (copy / "run.json").write_text(json.dumps(recorded))
    args = ["train", "--data", str(data), "--out", str(copy), "--resume", "--duration", "2steps", "--quiet",
            "--batch", "2", "--device", "cpu", "--rampup-kimg", "0"]
    res = runner.invoke(app, args)  # no --arch: the default (builtin64) would not fit
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["step"] == 2
    wrong = runner.invoke(app, [*args[:-6], "--duration", "3steps", "--arch", "builtin64", "--device", "cpu"])
    assert wrong.exit_code == 2 and "--arch builtin64 differs" in wrong.stderr, wrong.output


def test_preset_is_a_deprecated_alias_of_arch(tmp_path, trained):
    data, _ = trained
    args = ["train", "--data", str(data), "--duration", "1steps", "--quiet", "--batch", "2", "--device", "cpu"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "--preset", "tiny"])
    assert res.exit_code == 0, res.output
    assert "deprecated" in res.stderr and "--arch" in res.stderr
    assert json.loads((tmp_path / "a" / "run.json").read_text())["arch"] == "tiny"
    both = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--preset", "tiny", "--arch", "builtin64"])
    assert both.exit_code == 2 and "disagree" in both.stderr
    helptext = runner.invoke(app, ["train", "--help"]).output
    assert "--arch" in helptext and "--preset" not in helptext


def test_a_new_run_that_fails_at_its_start_leaves_no_folder(tmp_path, trained):
    """tiny-cond on unlabelled images: exit 2, and the folder it made (run.json, log, lock) is gone; a folder that
    existed before keeps what the failed start wrote (it may be started again in place)."""
    data, _ = trained
    args = ["train", "--data", str(data), "--arch", "tiny-cond", "--batch", "2", "--duration", "1steps", "--device",
            "cpu", "--quiet"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "new")])
    assert res.exit_code == 2 and "labelled dataset" in res.stderr and not (tmp_path / "new").exists(), res.output
    (tmp_path / "mine").mkdir()
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "mine")])
    assert res.exit_code == 2 and (tmp_path / "mine" / "run.json").is_file()


def test_a_start_refused_for_another_process_leaves_that_process_folder_alone(tmp_path):
    """Two `train --out X` at once: the second finds X made and locked by the first (RunInUse) and must not remove
    the first's run.json, log and lock as a failed start of its own."""
    import typer

    from ncvsd_cli.cli.train import run_training
    from ncvsd_cli.training.loop import LOCK_NAME, RunInUse

    out = tmp_path / "x"

    def other_process_started_first(settings, given=None):
        out.mkdir()
        for name in ("run.json", "log.jsonl", LOCK_NAME):
            (out / name).write_text("{}")
        raise RunInUse.of(out)

    settings = type("Settings", (), {"resume": False})()
    with pytest.raises(typer.Exit):
        run_training(other_process_started_first, settings, str(out))
    assert sorted(p.name for p in out.iterdir()) == sorted(["run.json", "log.jsonl", LOCK_NAME])


def test_distill_arch_must_match_the_teacher(tmp_path, trained):
    data, run = trained
    teacher = max((run / "snapshots").glob("teacher-*-0.050.safetensors"))
    base = ["distill", "--teacher", str(teacher), "--data", str(data), "--duration", "1steps", "--batch", "2",
            "--device", "cpu", "--quiet"]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "d"), "--arch", "builtin64"])
    assert res.exit_code == 2 and "--arch builtin64 does not match" in res.stderr, res.output
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "e"), "--preset", "tiny"])
    assert res.exit_code == 0 and "deprecated" in res.stderr, res.output


def test_distill_resume_refuses_code(tmp_path, trained):
    data, run = trained
    teacher = max((run / "snapshots").glob("teacher-*-0.050.safetensors"))
    out, marker = tmp_path / "d", tmp_path / "marker"
    out.mkdir()
    (out / "state.pt").write_bytes(_zip_state({"loop": _RunsCode(f"touch {marker}")}))
    res = runner.invoke(app, ["distill", "--teacher", str(teacher), "--data", str(data), "--out", str(out),
                              "--resume", "--duration", "2steps", "--batch", "2", "--device", "cpu", "--quiet"])
    assert not marker.exists() and res.exit_code == 3 and res.stderr.count("\n") == 1, res.output


def test_distill_resume_needs_no_teacher_or_data_again(tmp_path, trained):
    data, run = trained
    teacher = max((run / "snapshots").glob("teacher-*-0.050.safetensors"))
    out = tmp_path / "d"
    base = ["--out", str(out), "--batch", "2", "--device", "cpu", "--quiet", "--rampup-kimg", "0"]
    res = runner.invoke(app, ["distill", "--teacher", str(teacher), "--data", str(data), "--lr", "0.003",
                              "--duration", "1steps", *base])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["distill", "--out", str(out), "--resume", "--duration", "2steps", "--quiet"])
    assert res.exit_code == 0, res.output
    assert _lrs(out) == [0.003, 0.003]
    other = runner.invoke(app, ["distill", "--out", str(out), "--resume", "--teacher", "builtin64-teacher",
                                "--duration", "3steps", "--quiet"])  # another architecture: not "--arch" (untyped)
    said = " ".join(other.stderr.split())
    assert other.exit_code == 2 and "has the architecture 'builtin64', the run in" in said and "--arch" not in said
    wrong = runner.invoke(app, ["train", "--out", str(out), "--resume", "--duration", "3steps", "--quiet"])
    assert wrong.exit_code == 2 and "holds an 'ncvsd distill' run" in wrong.stderr, wrong.output  # was exit 3
    assert f"ncvsd distill --resume --out {out}" in " ".join(wrong.stderr.split()) and _lrs(out) == [0.003, 0.003]
    new = runner.invoke(app, ["distill", "--out", str(tmp_path / "e"), "--duration", "1steps", "--device", "cpu"])
    assert new.exit_code == 2 and "missing option --teacher" in new.stderr, new.output


def test_previews_a_kill_cut_short_are_written_on_resume(tmp_path, trained):
    """kill -9 after the snapshots but before the previews: --resume wrote neither them nor the snapshot's log
    record (the previews of that step were lost for good)."""
    data, run = trained
    teacher = max((run / "snapshots").glob("teacher-*-0.050.safetensors"))
    out = tmp_path / "d"
    res = runner.invoke(app, ["distill", "--teacher", str(teacher), "--data", str(data), "--duration", "1steps",
                              "--out", str(out), "--batch", "2", "--device", "cpu", "--quiet", "--rampup-kimg", "0"])
    assert res.exit_code == 0, res.output
    previews = sorted((out / "previews").glob("*.png"))
    assert len(previews) == 2
    for p in previews:
        p.unlink()
    log = (out / "log.jsonl").read_text().splitlines()
    (out / "log.jsonl").write_text("\n".join(line for line in log if '"snapshot"' not in line) + "\n")
    res = runner.invoke(app, ["distill", "--out", str(out), "--resume", "--quiet"])  # nothing left to train
    assert res.exit_code == 0 and sorted((out / "previews").glob("*.png")) == previews, res.output
    assert any(json.loads(line).get("event") == "snapshot" for line in (out / "log.jsonl").read_text().splitlines())


def test_init_teacher_typed_on_a_resume_is_said_to_be_unused(tmp_path, trained):
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    res = _resume(data, copy, "--init-teacher", str(max((run / "snapshots").glob("teacher-*-0.050.safetensors"))))
    assert res.exit_code == 0 and "is read only when a run starts: the resumed run goes on from its saved state" \
        in res.stderr and "replaces the run's recorded" not in res.stderr, res.output


def test_sampling_a_teacher_run_as_a_generator_points_to_teacher(tmp_path, trained):
    _, run = trained
    res = runner.invoke(app, ["sample", "-c", str(run), "--seeds", "0", "-o", str(tmp_path / "s.png"), "--device",
                              "cpu"])
    assert res.exit_code == 3 and "is a run of a teacher" in res.stderr and "with --teacher" in res.stderr, res.output


def test_a_resume_with_a_corrupt_run_record_says_so(tmp_path, trained):
    _, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "run.json").write_text("{bad")
    res = runner.invoke(app, ["train", "--out", str(copy), "--resume", "--quiet"])
    assert res.exit_code == 2 and "run.json is unreadable" in res.stderr, res.output


def test_distill_resume_refuses_a_replaced_or_lost_teacher_unless_it_is_typed_again(tmp_path, trained):
    """The README's promise, "--resume continues with the teacher file the run began with": a bare --resume whose
    teacher file changed or is gone is refused (exit 2) naming it; typing --teacher again goes on (a warning)."""
    data, run = trained
    teacher = tmp_path / "teacher.safetensors"
    shutil.copy(max((run / "snapshots").glob("teacher-*-0.050.safetensors")), teacher)
    out = tmp_path / "d"
    res = runner.invoke(app, ["distill", "--teacher", str(teacher), "--data", str(data), "--out", str(out),
                              "--batch", "2", "--device", "cpu", "--quiet", "--rampup-kimg", "0", "--duration",
                              "1steps"])
    assert res.exit_code == 0, res.output
    shutil.copy(max((run / "snapshots").glob("teacher-*-0.100.safetensors")), teacher)  # same place, other weights
    bare = ["distill", "--out", str(out), "--resume", "--duration", "2steps", "--quiet"]
    res = runner.invoke(app, bare)
    assert res.exit_code == 2 and f"the run's teacher file {teacher} changed since the run began" in res.stderr, \
        res.output
    res = runner.invoke(app, [*bare, "--teacher", str(teacher)])
    assert res.exit_code == 0 and "distillation goes on against another teacher" in res.stderr, res.output
    teacher.unlink()
    res = runner.invoke(app, [*bare[:4], "--duration", "3steps", "--quiet"])
    assert res.exit_code == 2 and f"the run's teacher file {teacher} is not found" in res.stderr, res.output


# ---------------------------------------------------------------------------------------------- signals
def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _wait_for_steps(log: Path, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        if log.exists() and any('"loss"' in line for line in log.read_text().splitlines()):
            return
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("training did not start in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_saves_state_and_ends_by_the_signal(tmp_path, trained, sig):
    """The state is saved, the JSON summary says the run was stopped, then the command ends by the signal itself
    (a shell sees 128 + N; `main`)."""
    data, _ = trained
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ncvsd_cli", "train", "--data", str(data), "--out", str(out),
           "--duration", "100000steps", *TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    try:
        _wait_for_steps(out / "log.jsonl", proc)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:  # never leave a 100000-step training behind when the test fails
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -sig, stderr
    assert f"interrupted by {sig.name}" in stderr and "--resume" in stderr and "\r" not in stderr
    assert f"ncvsd: {sig.name}: stopping after this step" in stderr  # said at once (a CPU step can take minutes)
    state = torch.load(out / "state.pt", weights_only=True)
    step = state["loop"]["step"]
    summary = json.loads(stdout)  # one line, saying it was stopped (not the normal summary: no "trainer")
    assert summary == {"out": str(out), "interrupted": sig.name, "exit_code": 128 + sig, "steps": step,
                       "kimg": summary["kimg"], "state": str(out / "state.pt")}, stdout
    events = [json.loads(line).get("event") for line in (out / "log.jsonl").read_text().splitlines()]
    assert step >= 1 and "interrupted" in events and "end" not in events
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"
    res = _resume(data, out, steps=step + 1)
    assert res.exit_code == 0, res.output
    assert torch.load(out / "state.pt", weights_only=True)["loop"]["step"] == step + 1


def test_second_signal_stops_at_once(tmp_path):
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.loop import TrainingAborted, TrainLoop, parse_duration

    loop = TrainLoop(tmp_path, distributed.init("cpu"), 2, parse_duration("1steps"), parse_duration("1steps"))
    before = signal.getsignal(signal.SIGTERM)
    previous = loop._install_signal_handlers()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert loop._signal == signal.SIGTERM  # the first one only asks to stop after the step
        with pytest.raises(TrainingAborted) as info:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert info.value.exit_code == 130 and info.value.summary["state"] is None
        assert "no training state was saved yet" in str(info.value)
        (tmp_path / "state.pt").write_bytes(b"saved")  # once a state is saved, the summary and message name it
        with pytest.raises(TrainingAborted) as info:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert info.value.summary["state"] == str(tmp_path / "state.pt") and "--resume continues" in str(info.value)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_inside_the_state_write_is_an_abort_not_a_disk_failure(tmp_path):
    """torch's zip writer turns the handler's TrainingAborted into "RuntimeError: unexpected pos": that was reported
    as a state that cannot be written (exit 1, so a shell loop went on), not as the second signal (exit 130)."""
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.loop import TrainingAborted, TrainLoop, parse_duration

    loop = TrainLoop(tmp_path, distributed.init("cpu"), 2, parse_duration("1steps"), parse_duration("1steps"))
    previous = loop._install_signal_handlers()

    def interrupted_write():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        except TrainingAborted as exc:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7290368") from exc

    try:
        loop._signal, loop.save_state = signal.SIGINT, interrupted_write
        with pytest.raises(TrainingAborted) as info:
            loop.checkpoint()
        assert info.value.exit_code == 130 and "cannot write" not in str(info.value)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_under_torchrun_signals_are_agreed_every_few_seconds_of_steps(tmp_path, monkeypatch):
    """Several ranks agree on signals and clocks collectively; that waited for a log step (30 s and more at CPU
    speed, when torchrun kills the workers): every step until the first log step, then about AGREE_SECONDS
    apart, the same interval on every rank (from the agreed, slowest clock)."""
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training import loop as loop_module
    from ncvsd_cli.training.loop import TrainLoop, parse_duration

    loop = TrainLoop(tmp_path, distributed.init("cpu"), 2, parse_duration("100steps"), parse_duration("1000steps"))
    loop.dist = type("Dist", (), {"world_size": 2, "is_main": True})()
    agreed = []
    clock = {"now": 1000.0}
    monkeypatch.setattr(loop_module.time, "time", lambda: clock["now"])
    monkeypatch.setattr(distributed, "all_max", lambda values, device: agreed.append(loop.step) or list(values))
    loop._first_step, loop._signal = 0, None
    for step in range(1, 41):  # 0.5 s per step, a log line every 10 steps
        loop.step, clock["now"] = step, 1000.0 + 0.5 * step
        if step == 23:
            loop._signal = signal.SIGINT
        signum, _, _ = loop._events(1000.0, 1000.0, 0, log_step=step % 10 == 0)
        if signum:
            break
    assert agreed[:10] == list(range(1, 11)) and agreed[10:] == [12, 16, 20, 24]  # every 4 steps: 2 s
    assert loop._agree_every == int(loop_module.AGREE_SECONDS / 0.5) and step == 24  # seen 1 step after it came


def test_the_summary_rate_is_the_runs_and_a_bad_snapshot_interval_is_named(tmp_path, trained):
    """The final --json summary's img_per_s was the last log interval's; it is this invocation's images over its
    training seconds. `--snapshot 0` was refused as "duration '0'"."""
    data, _ = trained
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--duration", "4steps",
                              "--quiet", *TINY])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.splitlines()[-1])
    end = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()][-1]
    assert end["event"] == "end" and summary["img_per_s"] == end["img_per_s"] > 0
    assert summary["img_per_s"] <= summary["kimg"] * 1000 / max(summary["seconds"] - 0.005, 1e-3)  # wall >= steps
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "s"), *TINY, "--snapshot", "0"])
    assert res.exit_code == 2 and "--snapshot '0' must be > 0" in res.output


def test_the_bar_of_a_resumed_step_duration_counts_the_steps_left_at_the_new_batch(tmp_path):
    """330 steps of 4 images, then --batch 8 to 600 steps: 1320 + 270 x 8 images in all (the bar showed 4800 and
    ended at 73 %)."""
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.loop import TrainLoop, parse_duration

    loop = TrainLoop(tmp_path, distributed.init("cpu"), 8, parse_duration("600steps"), parse_duration("1000steps"))
    loop.step, loop.cur_nimg, loop.progress = 330, 1320, False
    assert loop._reporter().total == 1320 + 270 * 8


# --------------------------------------------------------------------------------------------- progress
def test_a_long_first_step_against_a_time_duration_is_announced(tmp_path, capsys):
    """A 40-s step of a 40-s run (distillation on a small CPU) overshoots by a step: said once, after the first."""
    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.loop import TrainLoop, parse_duration

    for duration, step_s, said in (("40s", 10.0, True), ("40s", 1.0, False), ("3steps", 10.0, False)):
        loop = TrainLoop(tmp_path / duration, distributed.init("cpu"), 2, parse_duration(duration),
                         parse_duration("1steps"))
        loop.settings, loop.progress = {"duration": duration}, True
        loop._note_step_time(step_s)
        err = capsys.readouterr().err
        assert ("the first step took 10 s (warm-up included), 25 % of --duration 40s" in err) == said, err


def test_no_bar_is_drawn_into_a_non_terminal(tmp_path, trained, monkeypatch):
    data, _ = trained
    args = ["train", "--data", str(data), "--duration", "3steps", *TINY]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert res.stderr == "", "a short run on a non-terminal prints no progress at all"
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "0")  # a status line after every step
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "s")])
    lines = res.stderr.splitlines()
    # 3 steps, the final snapshot being written (said as on a bar: the run at 100 % is not stuck), the last
    assert res.exit_code == 0 and "\r" not in res.stderr and len(lines) == 5, res.stderr
    assert lines[3].endswith("saving=snapshot"), res.stderr
    assert lines[0].startswith("ncvsd train: 2/6 img (33%)") and "ETA" in lines[0]
    assert lines[-1].startswith("ncvsd train: 6/6 img (100%)") and "loss=" in lines[-1]
    quiet = runner.invoke(app, [*args, "--out", str(tmp_path / "q"), "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_a_terminal_bar_counts_whole_images_with_unit_scale(monkeypatch):
    """The training bar (unit_scale) showed "4.00/400 img": tqdm's scaled form below 1000; now 4/400, 1.50k/200k."""
    from ncvsd_cli import progress

    monkeypatch.setattr(progress, "sized_terminal", lambda stream: True)
    for done, total, said in ((4, 400, "| 4/400 img ["), (1500, 200000, "| 1.50k/200k img [")):
        stream = io.StringIO()
        rep = StatusReporter(total, "ncvsd train", unit="img", unit_scale=True, initial=done, interval=0.0,
                             stream=stream)
        rep.close()
        assert said in stream.getvalue(), stream.getvalue()


def test_status_lines_on_a_non_terminal():
    stream = io.StringIO()
    rep = StatusReporter(10, "ncvsd train", unit="img", interval=0.0, stream=stream)
    rep.update(3)
    rep.set_postfix({"loss": "0.5"})
    rep.update(2)
    rep.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("ncvsd train: 3/10 img (30%)") and "ETA" in lines[0]
    assert "5/10 img (50%)" in lines[1] and lines[1].endswith("loss=0.5")
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    slow = io.StringIO()
    rep = StatusReporter(10, "x", interval=30.0, stream=slow)
    rep.update(10)
    rep.close()
    quiet = io.StringIO()
    rep = StatusReporter(10, "x", quiet=True, interval=0.0, stream=quiet)
    rep.update(5)
    rep.close()
    assert slow.getvalue() == "" and quiet.getvalue() == ""


def test_work_done_before_counts_but_not_in_the_rate():
    """A resumed bench's finished rows (`skip`) move the count, not the rate: the ETA comes from this run's work
    (they counted as instant work and the ETA came out several times too short)."""
    rep = StatusReporter(100, "bench", unit="call", interval=1e9, stream=io.StringIO())
    now = [rep._start]
    rep._clock = lambda: now[0]
    rep.skip(50)
    now[0] += 10.0
    rep.update(10)  # 10 calls in 10 s: 1 call/s, 40 left
    line = rep.status_line()
    rep.close()
    assert "60/100 call (60%)" in line and "1 call/s" in line and "ETA 00:40" in line, line


def test_status_lines_continue_while_no_update_comes():
    """A long step between updates (a classical solve, a slow machine) still gets a status line every interval,
    its elapsed time moving; none after close()."""
    import time

    stream = io.StringIO()
    rep = StatusReporter(10, "restore", interval=0.05, stream=stream)
    rep.update(1)
    deadline = time.monotonic() + 5
    while stream.getvalue().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    rep.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("restore: 1/10 img (10%)") for line in lines)
    time.sleep(0.2)
    assert stream.getvalue().splitlines() == lines


def _run_on_pty(cmd: list[str]) -> tuple[int, str, str]:
    """Run `cmd` with stderr on a pseudo-terminal (80 columns); returns (exit code, stdout, terminal text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, env=_env())
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = proc.stdout.read().decode()
    proc.wait(timeout=120)
    os.close(master)
    return proc.returncode, stdout, b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("quiet", [False, True])
def test_bar_with_total_on_a_terminal(tmp_path, trained, quiet):
    data, _ = trained
    cmd = [sys.executable, "-m", "ncvsd_cli", "train", "--data", str(data), "--out", str(tmp_path / "r"),
           "--duration", "4steps", *TINY, *(["--quiet"] if quiet else [])]
    code, stdout, terminal = _run_on_pty(cmd)
    assert code == 0 and json.loads(stdout)["step"] == 4, terminal
    if quiet:
        assert terminal == ""
    else:  # 4 steps of 2 images: a total of 8 images, a percentage and an ETA
        assert "ncvsd train: 100%" in terminal and "| 8/8 img [" in terminal and "<00:00" in terminal, terminal


def test_the_arch_help_names_every_preset():
    """`train --help` lists the architectures by name (without importing torch); a new preset must be added."""
    import re

    from ncvsd_cli.cli.train import ARCH_HELP
    from ncvsd_cli.networks import PRESETS

    named = set(re.findall(r"\b([a-z0-9]+(?:-[a-z0-9]+)*)(?= \(|,|;)", ARCH_HELP))
    assert set(PRESETS) <= named, set(PRESETS) - named


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_data_without_images_is_named(tmp_path, kind):
    """The refusal named no folder ("the dataset holds no images")."""
    data = tmp_path / "empty"
    data.mkdir()
    (data / "notes.txt").write_text("no images here")
    if kind == "zip":
        data = shutil.make_archive(str(tmp_path / "empty"), "zip", data)
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "a"), "--duration", "1steps",
                              "--quiet", *TINY])
    assert res.exit_code == 2 and f"--data {str(data)!r} holds no images (.png, .jpg" in res.stderr, res.output
    assert not (tmp_path / "a").exists()


def test_missing_data_is_said_to_be_missing(tmp_path):
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "nonexist"), "--out", str(tmp_path / "a"),
                              "--duration", "1steps", "--quiet", *TINY])
    assert res.exit_code == 2 and "nor a zip file (it does not exist)" in res.stderr, res.output


def test_a_batch_larger_than_the_dataset_is_warned_of(tmp_path):
    data = _images(tmp_path / "imgs")  # 3 images
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "a"), "--duration", "1steps",
                              "--quiet", *TINY, "--batch", "4"])
    assert res.exit_code == 0, res.output
    assert "warning: --batch 4 is larger than the dataset's 3 images" in res.stderr
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "b"), "--duration", "1steps",
                              "--quiet", *TINY])
    assert "larger than the dataset" not in res.stderr


def test_a_damaged_zip_member_is_a_data_error(tmp_path):
    """A WebP in a zip whose bytes fail the zip's CRC was "internal error: BadZipFile" (exit 1)."""
    import zipfile

    data = _images(tmp_path / "imgs")
    buffer = io.BytesIO()
    Image.fromarray(np.full((19, 23, 3), 128, np.uint8)).save(buffer, format="WEBP", lossless=True)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(data.iterdir()):
            zf.write(p, p.name)
        zf.writestr("z.webp", buffer.getvalue())
    raw = bytearray(archive.read_bytes())
    at = raw.rindex(buffer.getvalue()[-16:])  # the member's stored bytes: damage them, not its header
    raw[at:at + 8] = bytes(8)
    archive.write_bytes(bytes(raw))
    res = runner.invoke(app, ["train", "--data", str(archive), "--out", str(tmp_path / "a"), "--duration", "1steps",
                              "--quiet", *TINY])
    assert res.exit_code == 2 and "z.webp: cannot read the image header (Bad CRC-32" in res.stderr, res.output


def test_a_file_that_is_no_image_fails_at_the_start_and_one_that_decodes_badly_keeps_the_steps(tmp_path):
    """Every header is read when the data opens (a text file named .png failed ~40 steps in, losing them); a file
    whose header reads but whose pixels are cut off fails when first drawn, after the state of the last finished step
    is saved: --resume continues once it is removed."""
    data = _images(tmp_path / "imgs")
    (data / "zz_text.png").write_bytes(b"not an image at all")
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "a"), "--duration", "3steps",
                              "--quiet", *TINY])
    assert res.exit_code != 0 and "zz_text.png: cannot read the image header (not an image format Pillow reads)" \
        in res.output and "<_io" not in res.output, res.output  # Pillow's message named its file object
    assert not (tmp_path / "a" / "state.pt").exists()
    (data / "zz_text.png").unlink()
    png = (data / "0.png").read_bytes()
    (data / "zz_cut.png").write_bytes(png[: len(png) // 2])  # header intact, pixel data cut
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "b"), "--duration", "400steps",
                              "--quiet", *TINY])
    assert res.exit_code != 0 and "zz_cut.png" in res.output and "--resume" in res.output, res.output
    step = torch.load(tmp_path / "b" / "state.pt", weights_only=True)["loop"]["step"]
    events = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert step >= 1 and events[-1]["event"] == "error" and events[-1]["step"] == step
    (data / "zz_cut.png").unlink()
    res = _resume(data, tmp_path / "b", steps=step + 1)
    assert res.exit_code == 0, res.output


def test_small_images_are_named_in_a_warning_even_when_quiet(tmp_path, capsys):
    from ncvsd_cli.training.data import folder_or_zip_source

    data = tmp_path / "imgs"
    data.mkdir()
    for i, size in enumerate((12, 40, 9)):
        Image.fromarray(np.zeros((size, size + 3, 3), np.uint8)).save(data / f"{i}.png")
    source = folder_or_zip_source(data, 16)
    assert "3 image(s) from" in source.description
    assert source.warning.startswith(f"2 of the 3 images in {data} (e.g. 0.png, 12 px) are smaller than the 16-px")
    assert folder_or_zip_source(data, 8).warning is None
    from ncvsd_cli.training.data import builtin_source

    assert "built-in scikit-image photos" in builtin_source(16).description  # the log's start event names it too


def test_a_resume_removes_the_half_written_files_of_a_killed_run(tmp_path, trained):
    """kill -9 during a save leaves `.state.pt.<random>.tmp` (the state itself is atomic): the next --resume, which
    holds the run folder's lock, removes it and those in the snapshots folder."""
    import shutil

    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / ".state.pt.k1ll3d.tmp").write_bytes(b"")
    (copy / "snapshots" / ".teacher-x.safetensors.abc.tmp").write_bytes(b"half")
    (copy / "snapshots" / ".tmpmcfoJ0").write_bytes(b"half")  # safetensors' own, left by versions before 2026-12-07
    res = _resume(data, copy, steps=2)
    assert res.exit_code == 0, res.output
    assert not list(copy.glob(".*.tmp")) and not list(copy.glob("*/.*.tmp")) and not list(copy.glob("*/.tmp*"))


def test_a_resume_drops_the_log_records_a_killed_run_made_after_its_last_state(tmp_path, trained):
    """kill -9 after steps that were logged but never saved: the resumed run makes those steps again, so their
    old records are dropped (counted in the resume event) and every step is logged once."""
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    saved = torch.load(copy / "state.pt", weights_only=True)["loop"]["step"]
    with open(copy / "log.jsonl", "a") as f:  # what the killed run logged past its state, and a line cut short
        f.write(json.dumps({"step": saved + 1, "kimg": 0.004, "loss": 9.0}) + "\n")
        f.write(json.dumps({"step": saved + 2, "kimg": 0.006, "loss": 9.0}) + "\n")
        f.write('{"step": ' + str(saved + 3))
    res = _resume(data, copy, steps=saved + 2)
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (copy / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(set(steps)) and 9.0 not in [r["loss"] for r in records if "loss" in r]
    resumed = [r for r in records if r.get("event") == "resume"]
    assert resumed[-1]["log_records_dropped"] == 3


def test_a_new_run_into_a_failed_starts_folder_starts_a_fresh_log(tmp_path):
    """A first start that failed (no state) left a log; starting again there writes a log of this run only."""
    data = _images(tmp_path / "imgs")
    out = tmp_path / "r"
    out.mkdir()
    (out / "log.jsonl").write_text(json.dumps({"event": "start", "step": 0}) + "\n")
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--duration", "1steps", "--quiet",
                              *TINY])
    assert res.exit_code == 0, res.output
    events = [json.loads(line).get("event") for line in (out / "log.jsonl").read_text().splitlines()]
    assert events.count("start") == 1


def test_a_run_folder_inside_the_data_is_not_trained_on_and_changed_data_is_told_on_resume(tmp_path):
    """`--out` inside `--data`: the run's previews and snapshots are not images to learn from; adding images before
    a --resume warns that the run no longer continues bit for bit."""
    from ncvsd_cli.training.data import folder_or_zip_source

    data = _images(tmp_path / "imgs")
    out = data / "run"
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--duration", "1steps", "--quiet",
                              *TINY])
    assert res.exit_code == 0, res.output
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(out / "preview.png")  # as distill writes previews
    source = folder_or_zip_source(data)
    assert "3 image(s)" in source.description and "run folder(s) run in it left out" in source.description
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(data / "new.png")
    res = _resume(data, out, steps=2)
    assert res.exit_code == 0 and "warning: the training data changed since the state was saved" in res.stderr, \
        res.output


@pytest.mark.parametrize("case", ["file", "under-a-file"])
def test_an_out_that_cannot_be_a_folder_is_a_usage_error_before_anything_loads(tmp_path, case):
    data = _images(tmp_path / "imgs")
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" if case == "file" else tmp_path / "afile" / "sub"
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--duration", "1steps", "--quiet",
                              *TINY])
    assert res.exit_code == 2 and "is a file, not a" in res.output and "internal error" not in res.output, \
        res.output


def test_fp16_on_a_cpu_is_refused_before_the_run_folder_is_made(tmp_path):
    data = _images(tmp_path / "imgs")
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "v"), "--duration", "1steps",
                              "--quiet", *TINY, "--precision", "fp16"])
    assert res.exit_code == 2 and "needs CUDA" in res.output and not (tmp_path / "v").exists(), res.output


def test_a_snapshot_that_cannot_be_written_keeps_the_training_state(tmp_path, trained, monkeypatch):
    """A snapshot write failing (a full disk) stops the run with one line naming the reason, exit 1, and the
    state of that step is saved first, so --resume loses nothing; that resume writes the missing final snapshot
    (it used to say "nothing to do" and leave the run without one). log.jsonl ends with the error."""
    from ncvsd_cli import images

    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    real = images._write_synced

    def second_fails(path, data):  # the 0.050 EMA's file written, the disk full at 0.100
        if "-0.100" in str(path):
            raise OSError(28, "No space left on device")
        return real(path, data)

    with monkeypatch.context() as m:
        m.setattr(images, "_write_synced", second_fails)
        res = _resume(data, copy, steps=3)
    assert res.exit_code == 1 and "cannot write a snapshot" in res.output and "No space left" in res.output \
        and "internal error" not in res.output, res.output
    assert torch.load(copy / "state.pt", weights_only=True)["loop"]["step"] == 3
    kimg = torch.load(copy / "state.pt", weights_only=True)["loop"]["cur_nimg"] / 1000
    assert not snapshot_path(copy, "teacher", kimg, 0.1).exists() and not list((copy / "snapshots").glob(".*tmp"))
    last = json.loads((copy / "log.jsonl").read_text().splitlines()[-1])  # the log said nothing of the stop
    assert last["event"] == "error" and "No space left" in last["error"] and last["step"] == 3
    further = tmp_path / "further"
    shutil.copytree(copy, further)
    res = _resume(data, copy, steps=3)  # one file of the two lost: written again
    assert res.exit_code == 0, res.output
    assert snapshot_path(copy, "teacher", kimg, 0.05).is_file() and snapshot_path(copy, "teacher", kimg, 0.1).is_file()
    events = [json.loads(line) for line in (copy / "log.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "snapshot" and events[-1]["step"] == 3
    res = _resume(data, further, steps=4)  # a resume that goes on also writes them first (it used to leave a gap)
    assert res.exit_code == 0 and snapshot_path(further, "teacher", kimg, 0.1).is_file(), res.output
    events = [json.loads(line) for line in (further / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "snapshot"][-2:] == [3, 4]


def test_snapshots_that_would_fill_the_disk_are_warned_of_at_the_first(tmp_path, monkeypatch):
    """A tiny --snapshot interval filled 7.3 GB in 5 steps unwarned: at the first snapshot the run says how many
    more it writes, their size and the free space, when they would not fit (and nothing when they do)."""
    import shutil as shutil_module

    data = _images(tmp_path / "imgs")
    real = shutil_module.disk_usage
    free = {"bytes": 10 * 1024**2}  # the tiny teacher's two EMA files: ~2 x 2.3 MB per snapshot

    def usage(path):
        return real(path)._replace(free=free["bytes"])

    monkeypatch.setattr(shutil_module, "disk_usage", usage)
    args = ["train", "--data", str(data), "--duration", "9steps", "--quiet", *TINY, "--snapshot", "1steps"]
    res = runner.invoke(app, [*args[:3], "--out", str(tmp_path / "a"), *args[3:]])
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "warning: at --snapshot 1steps the run writes about 8 more snapshots" in said and "free" in said, said
    assert [e["event"] for e in map(json.loads, (tmp_path / "a" / "log.jsonl").read_text().splitlines())
            if "event" in e].count("warning") == 1
    free["bytes"] = 1024**3
    res = runner.invoke(app, [*args[:3], "--out", str(tmp_path / "b"), *args[3:]])
    assert res.exit_code == 0 and "warning" not in res.output, res.output
    files = list((tmp_path / "b" / "snapshots").glob("*.safetensors"))
    snapshot = sum(p.stat().st_size for p in files) // len({p.name.rsplit("-", 1)[0] for p in files})
    free["bytes"] = 8 * snapshot + (tmp_path / "b" / "state.pt").stat().st_size // 2  # room for the snapshots,
    res = runner.invoke(app, [*args[:3], "--out", str(tmp_path / "c"), *args[3:]])  # not for a state beside them
    assert res.exit_code == 0 and "needs" in res.stderr and "to replace its state" in res.stderr, res.output


def test_a_training_state_that_cannot_be_written_is_one_line_and_keeps_the_old_state(tmp_path, trained,
                                                                                      monkeypatch):
    """torch.save on a full disk raised RuntimeError ("internal error"; its zip writer swallows the OSError of a
    write that fails part-way); now the reason, exit 1, the state saved before stays whole and no temporary file
    is left. A real part-way failure: the process may not write files past a size limit (EFBIG)."""
    import resource

    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    limit = (copy / "state.pt").stat().st_size // 2  # larger than run.json and the log, half the state
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        res = _resume(data, copy, steps=3)
        new = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "new"), "--duration",
                                  "1steps", "--quiet", *TINY])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert res.exit_code == 1 and "cannot write the training state" in res.output and "too large" in \
        res.output and "internal error" not in res.output, res.output
    assert "--resume from the state saved before" in " ".join(res.output.split())
    assert torch.load(copy / "state.pt", weights_only=True)["loop"]["step"] == 1
    assert not list(copy.glob(".state.pt*"))
    said = " ".join(new.output.split())  # a new run has no state to resume from: it says to start again
    assert new.exit_code == 1 and "start the run again (no state was saved yet)" in said and "--resume" not in said


@pytest.mark.parametrize("command", ["train", "distill"])
def test_a_new_run_never_overwrites_an_earlier_runs_snapshots(tmp_path, trained, command):
    """A run folder whose state.pt is gone (deleted to save room, or moved away as a corrupt state's message
    once said) still holds snapshots of the same kimg names a new run writes: a new run there is refused and
    leaves every file as it was; --resume says why it cannot continue and how to start from the snapshots."""
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "state.pt").unlink()
    files = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    extra = ["--teacher", str(run)] if command == "distill" else []
    new = runner.invoke(app, [command, "--data", str(data), "--out", str(copy), "--duration", "1steps", "--quiet",
                              *extra, *TINY])
    assert new.exit_code != 0 and "holds an earlier run's outputs (2 files in snapshots/)" in new.stderr, new.output
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == files
    resumed = runner.invoke(app, [command, "--out", str(copy), "--resume", "--device", "cpu"])
    assert resumed.exit_code == 2 and "but no state.pt to continue" in resumed.stderr, resumed.output
    assert f"--init-teacher / --init-generator {copy}" in " ".join(resumed.stderr.split())


def _strict_lines(path: Path) -> list[dict]:
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_a_diverging_run_stops_without_saving_its_weights(tmp_path, trained, monkeypatch):
    """--lr 1e30 makes the weights NaN by step 2: the run stops with exit 1 and a summary saying so, writes no state
    or snapshot, and its log stays strict JSON (the NaN loss as null). A resumed run whose weights go bad keeps the
    state saved before and says to --resume with a lower --lr."""
    data, run = trained
    out = tmp_path / "new"
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--duration", "4steps", "--quiet",
                              *TINY, "--lr", "1e30"])
    assert res.exit_code == 1 and "start again with a lower --lr" in res.stderr, res.output
    assert json.loads(res.stdout) == {"out": str(out), "diverged": "loss and weights not finite", "exit_code": 1,
                                      "steps": 2, "kimg": 0.004, "state": None}
    assert not (out / "state.pt").exists() and not (out / "snapshots").exists()
    log = _strict_lines(out / "log.jsonl")
    assert log[-2]["loss"] is None and log[-1]["event"] == "diverged"

    from ncvsd_cli.training.teacher import TeacherTrainer

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    state = (copy / "state.pt").read_bytes()
    step = TeacherTrainer.train_step

    def poisoned(self, i):
        losses = step(self, i)
        with torch.no_grad():
            next(self.net.parameters()).fill_(float("inf"))  # (a weight that overflowed; its loss is not yet bad)
        return losses

    monkeypatch.setattr(TeacherTrainer, "train_step", poisoned)
    res = runner.invoke(app, ["train", "--out", str(copy), "--resume", "--duration", "3steps", "--quiet",
                              "--device", "cpu"])
    assert res.exit_code == 1 and f"the state saved before ({copy / 'state.pt'}) is kept" in res.stderr, res.output
    assert json.loads(res.stdout)["state"] == str(copy / "state.pt")
    assert (copy / "state.pt").read_bytes() == state and len(list(copy.glob("snapshots/*"))) == 2


def test_a_run_whose_losses_explode_with_finite_weights_stops_as_diverged(tmp_path, trained, monkeypatch):
    """--lr 1e8: EDM2's normalised weights stayed finite while the loss reached 1e21; the run exited 0 and sampled
    white. A mean loss above DIVERGED_LOSS stops it, at a log line or before a save between log lines (no diverged
    state is saved); an infinite loss (an fp16 overflow) is left to the weights' check."""
    import torch

    from ncvsd_cli.training.teacher import TeacherTrainer

    data, _ = trained
    step = TeacherTrainer.train_step

    def run(out, sizes, *options):
        values = iter(sizes)

        def exploding(self, i):
            losses = step(self, i)
            return {k: v * 0 + next(values) for k, v in losses.items()}

        monkeypatch.setattr(TeacherTrainer, "train_step", exploding)
        return runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--quiet", *TINY, *options])

    res = run(tmp_path / "a", [1.0, 500.0, 1.0, 1.0], "--duration", "4steps")  # --log-every 1: a log line a step
    assert res.exit_code == 1 and "start again with a lower --lr" in res.stderr, res.output
    summary = json.loads(res.stdout)
    assert summary["diverged"] == "loss 500, where a loss of order 1 is normal" and summary["steps"] == 2, summary
    assert _strict_lines(tmp_path / "a" / "log.jsonl")[-1]["event"] == "diverged"
    b = tmp_path / "b"  # a save due between log lines: step 1 saved, step 2 (mean 500.5 so far) refused
    res = run(b, [1.0, 1000.0, 1.0, 1.0], "--duration", "4steps", "--log-every", "4", "--snapshot", "1steps")
    assert res.exit_code == 1 and "the state saved before" in res.stderr, res.output
    assert torch.load(b / "state.pt", weights_only=True)["loop"]["step"] == 1
    res = run(tmp_path / "c", [1.0, float("inf"), 1.0], "--duration", "3steps")  # weights finite: it goes on
    assert res.exit_code == 0, res.output


def test_a_data_error_before_any_state_says_to_run_again_not_resume(tmp_path):
    data = _images(tmp_path / "imgs")
    png = (data / "0.png").read_bytes()
    for i in range(3):
        (data / f"{i}.png").write_bytes(png[: len(png) // 2])  # every image cut: the first step fails
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "a"), "--duration", "3steps",
                              "--quiet", *TINY])
    assert res.exit_code != 0 and "run the same command again" in res.output and "--resume" not in res.output, \
        res.output
    summary = json.loads(res.stdout)  # a script reading stdout learns it too (it got nothing)
    assert summary["exit_code"] == res.exit_code and "run the same command again" in summary["error"], summary


def test_a_long_batch_moves_the_count_while_its_steps_run():
    """After `begin(cost)`, each step moves the items' count by its share of the batch's cost, and the batch's
    `update(cost)` adds only the rest: the rate and ETA keep moving during a DPS run of minutes (they used to
    stand still until it ended, then jump)."""
    from ncvsd_cli.progress import NestedProgress

    bar = NestedProgress(100, "bench", "call", interval=1e9, stream=io.StringIO())
    bar.begin(40)
    bar.step(10, 100)
    assert bar.items.n == pytest.approx(4)
    bar.step(50, 100)
    assert bar.items.n == pytest.approx(20)
    bar.step(20, 100)  # a retry's steps start again: the count never goes back
    assert bar.items.n == pytest.approx(20)
    bar.update(40)
    assert bar.items.n == pytest.approx(40)
    bar.update(10)  # a batch without `begin` (restore's images) counts as before
    bar.close()
    assert bar.items.n == pytest.approx(50)


def test_a_run_recorded_with_duration_2M_resumes_as_the_minutes_it_meant(tmp_path):
    """--duration 2M (2 minutes then) is refused now as ambiguous; a bare --resume of a run that recorded it
    takes it as 2min instead of failing on a value the user did not type."""
    from ncvsd_cli.training.common import with_duration
    from ncvsd_cli.training.teacher import TeacherSettings

    (tmp_path / "run.json").write_text(json.dumps({"duration": "2M"}))
    s = with_duration(TeacherSettings(data="builtin", out=str(tmp_path), resume=True))
    assert s.duration == "2min"


def test_labels_an_unconditional_architecture_does_not_use_are_noted(tmp_path):
    """A labelled set trained with --arch tiny: the labels were dropped without a word."""
    data = _images(tmp_path / "imgs")
    (data / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", i % 2] for i in range(3)]}))
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "a"), "--duration", "1steps",
                              "--quiet", *TINY])
    assert res.exit_code == 0 and "class labels (dataset.json) are not used: --arch tiny" in res.stderr, res.output
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "b"), "--duration", "1steps",
                              "--quiet", *[v if v != "tiny" else "tiny-cond" for v in TINY]])
    assert res.exit_code == 0 and "not used" not in res.stderr, res.output


def test_a_python_resume_keeps_the_recipe_checks_settings_and_leaves_the_random_state(tmp_path, trained):
    """From Python: a resume with only out/resume/duration trained on the built-in photos at the default settings
    (and recorded that); lr=-1 trained without a word; every call reset the caller's torch RNG to the run's seed."""
    from ncvsd_cli.training.teacher import TeacherSettings, train_teacher

    data, _ = trained
    out = tmp_path / "run"
    base = {"arch": "tiny", "batch": 2, "snapshot": "1000steps", "rampup_kimg": 0, "device": "cpu", "progress": False}
    torch.manual_seed(1)
    train_teacher(TeacherSettings(data=str(data), out=str(out), duration="1steps", lr=0.003, **base))
    after_one = torch.rand(3)
    torch.manual_seed(1)
    expected = torch.rand(3)
    assert torch.equal(after_one, expected)  # the caller's stream goes on as if no training had run
    record = train_teacher(TeacherSettings(out=str(out), resume=True, duration="2steps", device="cpu",
                                           progress=False))
    assert record["step"] == 2 and _lrs(out) == [0.003, 0.003]
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["data"] == str(data.absolute()) or recorded["data"] == str(data), recorded["data"]
    assert "overrides" not in recorded
    with pytest.raises(ValueError, match="--lr must be > 0"):
        train_teacher(TeacherSettings(data=str(data), out=str(tmp_path / "neg"), duration="1steps", lr=-1.0, **base))
    assert not (tmp_path / "neg").exists()
    train_teacher(TeacherSettings(out=str(out), resume=True, duration="3steps", lr=0.01, device="cpu",
                                  progress=False, command="my_sweep.py"), given={"lr", "duration"})
    assert _lrs(out) == [0.003, 0.003, 0.01]  # a field set back to its default, named in given (command: the caller's)
    from ncvsd_cli.training.common import library_settings

    run_json = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**run_json, "duration": "4M"}))  # recorded when "M" meant minutes
    assert library_settings(TeacherSettings(out=str(out), resume=True)).duration == "4min"


def test_a_data_errors_save_is_refused_when_the_losses_since_the_last_log_line_exploded(tmp_path, trained,
                                                                                       monkeypatch):
    """The save a data error makes (one process) skipped the loss-size check: a diverging step's weights were
    saved as the state to resume from."""
    from ncvsd_cli.images import ImageError
    from ncvsd_cli.training.teacher import TeacherTrainer

    data, _ = trained
    step, calls = TeacherTrainer.train_step, []

    def exploding_then_bad_file(self, i):
        calls.append(i)
        if len(calls) == 4:
            raise ImageError("x.png: cannot decode")
        losses = step(self, i)
        return {k: v * 0 + (1.0 if len(calls) == 1 else 500.0) for k, v in losses.items()}

    monkeypatch.setattr(TeacherTrainer, "train_step", exploding_then_bad_file)
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--duration", "6steps", "--quiet",
                              *TINY, "--log-every", "10"])
    assert res.exit_code == 1 and "training diverged by step 3" in res.stderr, res.output
    assert not (out / "state.pt").exists()


def test_run_folder_and_process_count_refusals_say_what_to_type(tmp_path, monkeypatch):
    """A read-only run folder said "choose another --out" to a --resume (another folder has no run); a batch the
    processes do not divide named no batch that works."""
    import os

    from ncvsd_cli.training import loop

    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != run)  # (root writes through chmod)
    with pytest.raises(ValueError, match="the folder is not writable; make it writable, or copy the run"):
        loop.check_run_folder(run)
    loop.check_run_folder(tmp_path / "new")  # a new folder in a writable one
    three = type("Dist", (), {"world_size": 3})()
    with pytest.raises(ValueError, match="--batch 8 is not divisible by the 3 processes: give --batch 6 or 9"):
        loop.TrainLoop(tmp_path / "x", three, 8, None, None)
    with pytest.raises(ValueError, match=r"--batch 3 is not divisible by the 4 processes: give --batch 4 \("):
        loop.TrainLoop(tmp_path / "x", type("Dist", (), {"world_size": 4})(), 3, None, None)  # said "4 or 4"


@pytest.mark.parametrize("command", ["train", "distill"])
def test_seed_is_checked_as_every_commands_and_out_has_its_short_name(tmp_path, command):
    """--seed 2^64 - 1 ran as -1 (the same run), 1e20 failed as "Overflow when unpacking long long"; train -o was
    "No such option" (restore, degrade, sample and bench take it)."""
    for seed, said in (("-1", "--seed"), (str(2**63), "above the largest seed")):
        res = runner.invoke(app, [command, "-o", str(tmp_path / "r"), "--seed", seed, "--data", "builtin"])
        assert res.exit_code == 2 and said in res.stderr and not (tmp_path / "r").exists(), res.output
