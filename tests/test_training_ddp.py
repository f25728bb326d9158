"""Two CPU processes (gloo) train the tiny teacher: parameters stay identical across ranks and the run resumes;
both are refused while another process holds the run folder."""

import os
import socket
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str, result: str, in_use: bool = False,
            full_disk: bool = False, bad_file: bool = False) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import torch.distributed as dist

    from ncvsd_cli.training import distributed
    from ncvsd_cli.training.loop import RunInUse
    from ncvsd_cli.training.teacher import TeacherSettings, TeacherTrainer

    info = distributed.init("cpu")
    try:
        if in_use:  # another process holds the run folder: every rank is refused (none waits for rank 0)
            s = TeacherSettings(data=data, arch="tiny", out=out, batch=4, duration="4steps", progress=False,
                                device="cpu", resume=True)
            try:
                TeacherTrainer(s, info)
            except RunInUse as exc:
                Path(f"{result}.{rank}").write_text(str(exc))
            return
        if full_disk:  # rank 0 cannot write its snapshot: every rank stops with the reason (none waits for it)
            s = TeacherSettings(data=data, arch="tiny", out=out, batch=4, duration="4steps", progress=False,
                                device="cpu", resume=True, log_every=1)
            tr = TeacherTrainer(s, info)
            if rank == 0:
                def full():
                    raise OSError(28, "No space left on device")
                tr.write_snapshot = full
            try:
                tr.run()
            except OSError as exc:
                Path(f"{result}.{rank}").write_text(str(exc))
            return
        if bad_file:  # rank 1 alone meets an unreadable image: it leaves at once, rank 0 says why it stopped
            from ncvsd_cli.images import ImageError
            from ncvsd_cli.training.loop import run_then_leave

            s = TeacherSettings(data=data, arch="tiny", out=out, batch=4, duration="8steps", progress=False,
                                device="cpu", resume=True, log_every=1)
            tr = TeacherTrainer(s, info)
            if rank == 1:
                def unreadable(step, real=tr.train_step):
                    if step >= 5:
                        raise ImageError("x.png: cannot decode image (truncated or corrupt)")
                    return real(step)
                tr.train_step = unreadable
            try:
                run_then_leave(tr.run, out)
            except Exception as exc:  # noqa: BLE001 (each rank's error is the result)
                Path(f"{result}.{rank}").write_text(f"{type(exc).__name__}: {exc}")
            return
        results = []
        for steps, resume in ((2, False), (3, True)):  # a run, then its resumption from state.pt
            s = TeacherSettings(data=data, arch="tiny", out=out, batch=4, duration=f"{steps}steps",
                                snapshot="100steps", log_every=1, rampup_kimg=0.0, progress=False, device="cpu",
                                resume=resume)
            tr = TeacherTrainer(s, info)
            tr.run()
            flat = torch.cat([p.detach().reshape(-1) for p in tr.net.parameters()])
            gathered = [torch.zeros_like(flat) for _ in range(world)]
            dist.all_gather(gathered, flat)
            results.append({"params": gathered, "step": tr.step})
        if rank == 0:
            torch.save(results, result)
    finally:
        distributed.shutdown()


def _spawn(*args, limit: float = 300) -> None:
    """Run `_worker(rank, 2, port, *args)` on two processes; a hang (a rank left waiting in a collective) fails
    after `limit` seconds instead of blocking the suite."""
    ctx = mp.start_processes(_worker, args=(2, _free_port(), *args), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + limit
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise AssertionError(f"the two processes did not finish within {limit} s")


def test_two_process_training_identical_and_resumes(tmp_path):
    from PIL import Image

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((18, 21, 3)) * 255).astype(np.uint8)).save(data / f"{i}.png")
    out, res = str(tmp_path / "run"), str(tmp_path / "res.pt")
    _spawn(str(data), out, res)
    r, r2 = torch.load(res)
    assert r["step"] == 2 and torch.equal(r["params"][0], r["params"][1])
    assert r2["step"] == 3 and torch.equal(r2["params"][0], r2["params"][1])
    assert not torch.equal(r["params"][0], r2["params"][0])
    assert (tmp_path / "run" / "state.pt").exists()

    import filelock

    with filelock.FileLock(str(tmp_path / "run" / ".ncvsd-run.lock")):
        _spawn(str(data), out, res, True, limit=120)
    assert all("being trained in by another process" in Path(f"{res}.{r}").read_text() for r in (0, 1))
    _spawn(str(data), out, res + "-full", False, True, limit=120)
    said = [Path(f"{res}-full.{r}").read_text() for r in (0, 1)]
    assert "No space left on device" in said[0] and "rank 0 could not write" in said[1], said
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["loop"]["step"] == 4
    for attempt in range(3):  # gloo's teardown after a peer vanished can abort (SIGABRT, "terminate called without
        started = time.monotonic()  # an active exception"): a race inside torch, 1 of 4 loaded suite runs, 0 of 22
        for r in (0, 1):  # alone; what is checked here is written before it, so a run that wrote both results counts
            Path(f"{res}-bad.{r}").unlink(missing_ok=True)
        try:
            _spawn(str(data), out, res + "-bad", False, False, True, limit=120)
            break
        except mp.ProcessExitedException as exc:
            if exc.signal_name != "SIGABRT":
                raise
            if all(Path(f"{res}-bad.{r}").is_file() for r in (0, 1)):
                break
            if attempt == 2:
                raise
    said = [Path(f"{res}-bad.{r}").read_text() for r in (0, 1)]
    assert said[1].startswith("DataError: x.png: cannot decode") and said[0].startswith("PeerLost: another process "
                                                                                         "of this run stopped"), said
    assert f"{out}/state.pt, is kept: --resume continues" in said[0]
    assert time.monotonic() - started < 45, "rank 0 waited for the barrier's 60 s instead of failing at once"
    # the two-process run resumes on one process: the global batch (4) is kept, its data goes on (README)
    import json

    from typer.testing import CliRunner

    from ncvsd_cli.cli import app

    step = torch.load(tmp_path / "run" / "state.pt", weights_only=True)["loop"]["step"]
    one = CliRunner().invoke(app, ["train", "--out", out, "--resume", "--duration", f"{step + 1}steps", "--quiet",
                                   "--device", "cpu"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["step"] == step + 1
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["loop"]["step"] == step + 1
