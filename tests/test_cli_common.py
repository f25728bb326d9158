"""cli/common.py: option parsing, input expansion, output naming and the exit-code mapping."""

import inspect
import io
import json
import re
import sys
from pathlib import Path

import pytest
import typer

import operators
from ncvsd_cli import images
from ncvsd_cli.cli import common
from ncvsd_cli.cli.common import InputItem, UsageError


def test_parse_device():
    assert str(common.parse_device("cpu")) == "cpu"
    assert common.parse_device("auto").type in ("cpu", "cuda")
    for bad in ("tpu", "cuda:x", "gpu0"):
        with pytest.raises(UsageError, match="device"):
            common.parse_device(bad)


def test_parse_params_and_int_lists():
    assert common.parse_params(["a=3", "b=0.5", "c=true", "d=[1, 2]", "e=some/path.png", "f="]) == {
        "a": 3,
        "b": 0.5,
        "c": True,
        "d": [1, 2],
        "e": "some/path.png",
        "f": "",
    }
    # exponents without a dot are numbers, as in Python (YAML 1.1 reads `1e-3` as text)
    assert common.parse_params(["s=1e-3", "t=-2E+2", "u=[1e-3, 2]", "v=1e", "w=e5", "x=1.5e3", "y=1e5x", "z=1.2.3"]) == {
        "s": 0.001, "t": -200.0, "u": [0.001, 2], "v": "1e", "w": "e5", "x": 1500.0, "y": "1e5x", "z": "1.2.3"}
    with pytest.raises(UsageError, match="key=value"):
        common.parse_params(["novalue"])
    assert common.parse_int_list("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    for bad in ("a-b", "5-2", ""):
        with pytest.raises(UsageError):
            common.parse_int_list(bad)


def test_expand_inputs(tmp_path, capsys, monkeypatch):
    d = tmp_path / "d"
    d.mkdir()
    for name in ("b.png", "a.jpg", "notes.txt", ".hidden.png", "a_sr4.png", "r.CR2", "b.ncvsd.json", ".x"):
        (d / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    items, missing = common.expand_inputs(
        [
            str(d),
            str(d / "a.jpg"),
            "-",
            str(tmp_path / "*.none"),
            str(tmp_path / "nope.png"),
            str(tmp_path / "empty"),
        ],
        skip=lambda p: p.stem.endswith("_sr4"),
    )
    assert [i.name for i in items] == [str(d / "a.jpg"), str(d / "b.png"), "<stdin>"]  # sorted, no duplicates
    assert items[-1].is_stdin and items[-1].stem == "stdin"
    assert len(missing) == 3 and all(msg.count("\n") == 0 for _, msg in missing)
    monkeypatch.chdir(tmp_path)  # the README's path outside a clone (a wheel's user): where the example is
    _, missing = common.expand_inputs(["ncvsd_cli/examples/astronaut.png"], quiet=True)
    assert str(images.example_path()) in missing[0][1]
    err = capsys.readouterr().err  # files of other types in a folder given (raw photos) were left out silently
    assert f"{d / 'a.jpg'}: given more than once, read once" in err
    assert "2 file(s) in the folder(s) given left out, not of an image type read here (.txt x1, .cr2 x1;" in err
    (d / "k.npy").write_bytes(b"x")  # the -p file named in the folder is no file "left out"
    common.expand_inputs([str(d)], params={"kernel": str(d / "k.npy")})
    assert "2 file(s) in the folder(s)" in capsys.readouterr().err
    common.expand_inputs([str(d / "b.png"), str(d / "b.png")], quiet=True)
    assert capsys.readouterr().err == ""
    globbed, _ = common.expand_inputs([str(d / "*.png")])
    assert [i.path.name for i in globbed] == ["a_sr4.png", "b.png"]
    with pytest.raises(UsageError):
        common.expand_inputs(["-", "-"])
    with pytest.raises(UsageError):
        common.expand_inputs([])


def test_a_glob_in_single_quotes_as_cmd_exe_passes_it_is_read_without_them(tmp_path, monkeypatch):
    """cmd.exe keeps the single quotes of the README's 'photos/**/*.png': "no file matches this pattern"."""
    monkeypatch.chdir(tmp_path)
    Path("a").mkdir()
    for name in ("a/x.png", "a/y.png"):
        Path(name).write_bytes(b"x")
    items, missing = common.expand_inputs(["'a/*.png'", "'a/x.png'"])
    assert [i.path.as_posix() for i in items] == ["a/x.png", "a/y.png"] and not missing
    Path("'q.png'").write_bytes(b"x")  # a file named with the quotes: itself
    items, _ = common.expand_inputs(["'q.png'"])
    assert [i.path.name for i in items] == ["'q.png'"]


@pytest.mark.parametrize("pattern, subdirs", [("**/*.png", ["", "a", "a/b"]), ("*/x.png", ["a"]),
                                              ("a/**/x.png", ["", "b"]), ("*.png", [""])])
def test_glob_keeps_the_folders_its_wildcards_matched(tmp_path, monkeypatch, pattern, subdirs):
    """Files of several folders named by one glob keep their path below its fixed part under -o DIR (a camera's
    100/IMG_1.JPG and 101/IMG_1.JPG); files and folders named directly are written flat."""
    monkeypatch.chdir(tmp_path)
    for sub in ("", "a", "a/b"):
        Path(sub or ".").mkdir(parents=True, exist_ok=True)
        (Path(sub or ".") / "x.png").write_bytes(b"x")
    items, _ = common.expand_inputs([pattern])
    assert sorted(i.subdir for i in items) == subdirs
    outs = {common.output_path(i, "out", "dir", "sr4") for i in items}
    assert outs == {str(Path("out", s, "x.png")) for s in subdirs}
    direct, _ = common.expand_inputs(["a/x.png", "a/b"])
    absolute, _ = common.expand_inputs([str(tmp_path / "a" / "*" / "x.png")])
    assert [i.subdir for i in direct + absolute] == ["", "", "b"]  # the absolute glob's fixed part: tmp_path/a
    Path("out", "a").mkdir(parents=True)  # earlier outputs in an -o folder below the glob's: not inputs again
    (Path("out", "a") / "x.png").write_bytes(b"x")
    again, _ = common.expand_inputs(["**/*.png"], out="out/")
    assert sorted(i.subdir for i in again) == ["", "a", "a/b"]
    assert sorted(i.subdir for i in common.expand_inputs(["**/*.png"], out=".")[0]) == ["", "a", "a/b", "out/a"]
    assert [i.name for i in common.expand_inputs(["out/a/x.png"], out="out")[0]] == ["out/a/x.png"]  # named
    kept = next(i for i in absolute)  # -o into the folder the input came from: the tag keeps it apart
    assert common.output_path(kept, str(tmp_path / "a"), "dir", "sr4") == str(tmp_path / "a" / "b" / "x_sr4.png")
    up, _ = common.expand_inputs(["a/*/../../x.png"])  # `..` after a wildcard: never above -o DIR
    assert [(i.subdir, common.output_path(i, "out", "dir", "sr4")) for i in up] == [("", str(Path("out", "x.png")))]
    tagged = Path("a", "x_sr4.png")  # the command's own earlier outputs (skip): left out of globs as of listings
    tagged.write_bytes(b"x")
    found, _ = common.expand_inputs(["a/**/*.png"], skip=lambda p: p.stem.endswith("_sr4"))
    assert sorted(str(i.path) for i in found) == [str(Path("a", "b", "x.png")), str(Path("a", "x.png"))]
    meant, _ = common.expand_inputs(["a/*_sr4.png"], skip=lambda p: p.stem.endswith("_sr4"))  # all it matches
    assert [str(i.path) for i in meant] == [str(tagged)]


def test_output_naming(tmp_path):
    a = InputItem("in/a.png", Path("in/a.png"))
    b = InputItem("in/b.png", Path("in/b.png"))
    stdin = InputItem("<stdin>")
    assert common.output_path(a, None, common.output_mode(None, [a]), "sr4") == "in/a_sr4.png"
    assert common.output_path(stdin, None, "beside", "sr4") == "-"
    assert common.output_mode("-", [a]) == "stdout"
    with pytest.raises(UsageError):
        common.output_mode("-", [a, b])
    assert common.output_mode("x.png", [a]) == "file"
    with pytest.raises(UsageError, match="names one image but 2 inputs"):
        common.output_mode("x.png", [a, b])  # not a directory called x.png
    assert common.output_mode("x.png/", [a, b]) == "dir" and common.output_mode("outs", [a, b]) == "dir"
    assert common.output_mode(str(tmp_path), [a]) == "dir"
    assert common.output_mode("results", [a]) == "dir"  # no suffix: a folder, not an image file named "results"
    for bad in ("x.json", "x.txt", "x.safetensors", "x.h5"):  # a file output is an image: refused before any work
        with pytest.raises(UsageError, match="unknown image format"):
            common.output_mode(bad, [a])
    with pytest.raises(UsageError, match="for a folder end it with a slash: -o results.v1/$"):
        common.output_mode("results.v1", [a])  # a dotted folder name: how to say it is one
    assert common.output_mode("results.v1/", [a]) == "dir"
    (tmp_path / "existing").write_bytes(b"data")  # e.g. -o Makefile, a typo: refused, not replaced
    with pytest.raises(UsageError, match="existing file without an image suffix.*-o .*existing.png"):
        common.output_mode(str(tmp_path / "existing"), [a])
    (tmp_path / "stdout").symlink_to(tmp_path / "existing")  # e.g. /dev/stdout (a link): written as given
    assert common.output_mode(str(tmp_path / "stdout"), [a]) == "file"
    assert common.output_path(a, "out", "dir", "sr4") == "out/a.png"
    (tmp_path / "a.png").write_bytes(b"x")
    same = InputItem(str(tmp_path / "a.png"), tmp_path / "a.png")
    assert common.output_path(same, str(tmp_path), "dir", "sr4") == str(tmp_path / "a_sr4.png")
    assert common.variant_path("out/a.png", "_s2") == "out/a_s2.png"
    with pytest.raises(UsageError):
        common.variant_path("-", "_s0")


def test_check_outputs(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "exists.png").write_bytes(b"x")
    a = InputItem("a", tmp_path / "a.png")
    b = InputItem("b", tmp_path / "b.png")
    c = InputItem("c", tmp_path / "sub" / "b.png")
    planned = {a: [str(tmp_path / "a.png")], b: [str(tmp_path / "out.png")], c: [str(tmp_path / "out.png")]}
    problems = common.check_outputs(planned, [a, b, c], overwrite=False)
    assert "is an input" in problems[a] and "also be written for b" in problems[c]
    assert "also be written for c" in problems[b]  # both refused: neither is written
    assert "exists" in common.check_outputs({b: [str(tmp_path / "exists.png")]}, [b], False)[b]
    assert common.check_outputs({b: [str(tmp_path / "exists.png")]}, [b], True) == {}


@pytest.mark.parametrize(("platform", "clash"), [("darwin", True), ("win32", True), ("linux", False)])
def test_outputs_differing_in_case_clash_where_file_systems_ignore_case(tmp_path, monkeypatch, platform, clash):
    """photo.jpg and Photo.png wrote out/photo.png and out/Photo.png, one file on macOS and Windows: the second
    replaced the first (--overwrite) or failed as "exists"."""
    monkeypatch.setattr(common.sys, "platform", platform)
    a, b = InputItem("photo.jpg", tmp_path / "photo.jpg"), InputItem("Photo.png", tmp_path / "Photo.png")
    planned = {a: [str(tmp_path / "out" / "photo.png")], b: [str(tmp_path / "out" / "Photo.png")]}
    problems = common.check_outputs(planned, [a, b], overwrite=True)
    assert (set(problems) == {a, b}) == clash and (not problems) == (not clash), problems
    assert clash == ("also be written for Photo.png" in problems.get(a, ""))


@pytest.mark.parametrize(
    "exc, code",
    [(UsageError("u"), 2), (ValueError("v"), 2), (KeyboardInterrupt(), 130), (RuntimeError("bug"), 1)],
)
def test_handle_errors_maps_exit_codes(exc, code, capsys, monkeypatch):
    monkeypatch.delenv("NCVSD_DEBUG", raising=False)
    with pytest.raises(typer.Exit) as info, common.handle_errors():
        raise exc
    assert info.value.exit_code == code
    err = capsys.readouterr().err
    assert err.startswith("ncvsd: error:") and err.count("\n") == 1


def test_checkpoint_error_is_exit_3(capsys):
    from ncvsd_cli.checkpoints import CheckpointError

    with pytest.raises(typer.Exit) as info, common.handle_errors():
        raise CheckpointError("checksum mismatch for x")
    assert info.value.exit_code == 3 and "checksum" in capsys.readouterr().err


def test_report_exit_code_and_json(capsys):
    r = common.Report("t")
    r.ok("a", ["a_out.png"])
    with pytest.raises(typer.Exit) as info:
        r.finish(as_json=True)
    assert info.value.exit_code == 0 and '"ok": 1' in capsys.readouterr().out
    r.failed("b", "b: broken")
    assert r.exit_code() == 1 and r.summary()["failed"] == 1


@pytest.mark.parametrize("task", operators.registry.names())
def test_param_help_names_every_operator_parameter(task):
    """`--param` help lists each builtin task's parameters (a parameter added to an operator must be documented)."""
    names = [k for k in inspect.signature(operators.get(task).__init__).parameters if k not in ("self", "image_shape")]
    family = "sr2/sr4/sr8" if re.fullmatch(r"sr\d", task) else task
    segment = common.PARAM_HELP.split(f"{family} ", 1)[1].split(";", 1)[0]
    assert all(re.search(rf"\b{n}\b", segment) for n in names), (task, names, segment)
    assert names or segment.startswith("none")


def test_under_torchrun_a_signal_is_told_once_and_errors_name_their_rank(monkeypatch, capsys):
    """Every rank gets Ctrl-C: rank 0 alone says so; errors print on every rank, whole lines naming the rank;
    RANK without torchrun (no LOCAL_RANK, WORLD_SIZE 1) changes nothing."""
    import typer

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    for rank, code, shown in (("1", 130, None), ("1", 2, "ncvsd: rank 1: error: boom\n"),
                              ("0", 130, "ncvsd: error: boom\n")):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(typer.Exit):
            common.fail("boom", code)
        assert capsys.readouterr().err == (shown or ""), (rank, code)
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(typer.Exit):
        common.fail("boom", 130)
    assert capsys.readouterr().err == "ncvsd: error: boom\n"


def test_a_note_clears_a_progress_bar_and_starts_its_own_line(monkeypatch):
    """A note written while a tqdm bar is on screen (e.g. per photo while reading camera shakes) starts at the
    line's beginning after the bar is wiped, and the bar is drawn again after it, not glued to the note."""
    import io
    import sys

    from tqdm import tqdm

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    bar = tqdm(total=2, file=stream, desc="bar")
    bar.update(1)
    common.note("hello")
    text = stream.getvalue()
    bar.close()
    before, after = text.split("ncvsd: hello\n")
    assert before.endswith("\r") and before.rstrip("\r").endswith(" ") and "bar:  50%" in after


def test_a_pipe_whose_reader_has_gone_is_told_before_the_next_write(monkeypatch):
    """`--json | head -1`: once the reader closes, raise_if_stdout_closed raises BrokenPipeError (the restore stops
    at its next step, not after another whole image); an open pipe and a non-pipe stdout pass."""
    import os

    read, write = os.pipe()
    with os.fdopen(write, "w") as out:
        monkeypatch.setattr(common.sys, "stdout", out)
        common.raise_if_stdout_closed()  # the reader is there
        os.close(read)
        with pytest.raises(BrokenPipeError):
            common.raise_if_stdout_closed()
        monkeypatch.undo()
    monkeypatch.setattr(common.sys, "stdout", io.StringIO())
    common.raise_if_stdout_closed()  # no file descriptor: nothing to tell


def test_a_folder_another_probe_makes_or_removes_meanwhile_is_no_problem(tmp_path, monkeypatch):
    """Two processes of `xargs -P 2 ... -o new/` probing the same new folder: one's mkdir met the other's folder
    ("File exists") or its clean-up ("No such file or directory"): a random usage error."""
    real_mkdir, real_mkstemp = Path.mkdir, common.tempfile.mkstemp
    raced = []

    def mkdir_after_the_other(self, *args, **kwargs):  # the other process made it just before
        real_mkdir(self)
        raced.append(self)
        raise FileExistsError(17, "File exists", str(self))

    monkeypatch.setattr(Path, "mkdir", mkdir_after_the_other)
    assert common._folder_problem(tmp_path / "a" / "b", {}) is None and raced
    monkeypatch.setattr(Path, "mkdir", real_mkdir)
    calls = []

    def removed_once(*args, **kwargs):  # the other's clean-up removed the folder between mkdir and the probe
        calls.append(1)
        if len(calls) == 1:
            raise FileNotFoundError(2, "No such file or directory")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(common.tempfile, "mkstemp", removed_once)
    assert common._folder_problem(tmp_path / "c", {}) is None and len(calls) == 2
    (tmp_path / "f").write_bytes(b"x")
    assert "is not a directory" in common._folder_problem(tmp_path / "f" / "d", {})


def test_names_from_a_crlf_list_are_read_without_the_carriage_return(tmp_path, monkeypatch, capsys):
    """`xargs -d '\\n'` over a list saved on Windows: every input failed as "no such file" (the \\r shown as a space)."""
    monkeypatch.chdir(tmp_path)
    Path("my photo.png").write_bytes(b"x")
    items, missing = common.expand_inputs(["my photo.png\r", "gone.png\r"])
    assert [i.path.name for i in items] == ["my photo.png"] and [m for m, _ in missing] == ["gone.png"]
    assert "2 input name(s) ended with a carriage return" in capsys.readouterr().err


def test_inputs_differing_in_case_on_a_case_sensitive_volume_are_both_read(tmp_path, monkeypatch, capsys):
    """The case-folded output key was used for inputs too: on a case-sensitive volume under macOS or Windows,
    a.png and A.png (two files there) were read as one, the other skipped without a word."""
    monkeypatch.setattr(common.sys, "platform", "darwin")
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "A.png").write_bytes(b"y")
    if (tmp_path / "a.png").read_bytes() == b"y":
        pytest.skip("case-insensitive file system")
    items, _ = common.expand_inputs([str(tmp_path)])
    assert sorted(i.path.name for i in items) == ["A.png", "a.png"]
    (tmp_path / "b.png").hardlink_to(tmp_path / "a.png")  # one file under two names: read once, said
    items, _ = common.expand_inputs([str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    assert [i.path.name for i in items] == ["a.png"] and "b.png: given more than once" in capsys.readouterr().err


def test_a_folder_another_probe_made_and_removed_again_is_probed_again(tmp_path, monkeypatch):
    """mkdir met the other process's folder ("File exists"), which its clean-up removed before the is_dir check:
    "... is not a directory", a usage error."""
    real_mkdir, calls = Path.mkdir, []

    def exists_then_gone(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 1:
            raise FileExistsError(17, "File exists", str(self))  # (and already removed again)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", exists_then_gone)
    assert common._folder_problem(tmp_path / "new", {}) is None and len(calls) == 2


def test_a_run_stopped_before_its_command_owes_a_summary_still_ends_with_one(monkeypatch, capsys):
    """Ctrl-C in the seconds before a --json command set up its report left stdout empty (an abort looked like a
    crash): `main` writes the summary line before it ends by the signal."""
    import signal

    from ncvsd_cli import cli

    monkeypatch.setattr(sys, "argv", ["ncvsd", "restore", "x.png", "--json"])
    monkeypatch.setattr(cli, "app", lambda: sys.exit(130))
    monkeypatch.setattr(cli.common, "summary_written", False)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # (main then ends by the signal: not this process)
    monkeypatch.setattr(cli.os, "kill", lambda *args: None)
    with pytest.raises(SystemExit):
        cli.main()
    line = json.loads(capsys.readouterr().out)
    assert line["command"] == "restore" and line["interrupted"] == "SIGINT" and line["exit_code"] == 130
    monkeypatch.setattr(cli.common, "summary_written", True)  # a command that wrote its own: none more
    with pytest.raises(SystemExit):
        cli.main()
    assert capsys.readouterr().out == ""


def test_a_progress_interval_that_is_no_number_is_said_once(monkeypatch, capsys):
    """NCVSD_PROGRESS_INTERVAL=abc was ignored without a word."""
    from ncvsd_cli import progress

    monkeypatch.setattr(progress, "_said_interval", [])
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "abc")
    assert progress.default_interval() == progress.default_interval() == progress.DEFAULT_INTERVAL
    assert capsys.readouterr().err.count("NCVSD_PROGRESS_INTERVAL='abc' is not a number") == 1
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "2.5")
    assert progress.default_interval() == 2.5
