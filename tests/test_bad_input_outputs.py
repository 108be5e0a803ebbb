"""The output policy of every command that writes files (:mod:`xslicq.outputs`, issue 22's
cases 1-6, 13 and 14): nothing it did not write is replaced, no input and no symbolic link
is written over, one run at a time per output folder, files written whole, and a full disk
or an unwritable folder is one line that names the cause."""

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import open_dict

from xslicq import outputs
from xslicq.outputs import CLAIM, OutputError, claim

from helpers import (
    SR,
    TINY_DATA,
    TINY_MODEL,
    compose_config,
    fresh_checkpoint,
    needs_fluidsynth,
    run_module,
)

STEMS = ("vocals.wav", "drums.wav", "bass.wav", "other.wav")
UNWRITABLE = Path("/proc/xslicq-outputs-test")  # no file can be made in /proc, even as root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained checkpoint of the tiny model (seconds to make)."""
    return fresh_checkpoint(tmp_path_factory.mktemp("model") / "model.ckpt")


@pytest.fixture(scope="module")
def causal(tmp_path_factory):
    """An untrained causal (experiment=stream) checkpoint, for the stream."""
    path = tmp_path_factory.mktemp("causal") / "causal.ckpt"
    return fresh_checkpoint(path, ["experiment=stream", "model.hidden=8"])


def song(path, seconds=1.0, seed=0):
    """A stereo noise song of ``seconds`` at 44.1 kHz, as a float WAV."""
    audio = 0.1 * np.random.default_rng(seed).standard_normal((int(seconds * SR), 2))
    sf.write(path, audio, SR, subtype="FLOAT")
    return Path(path)


def cli(main, capsys, *args):
    """An argparse entry point in this process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The one ``error:`` line that ends ``err`` (a progress bar may come before it)."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert err.endswith(lines[0] + "\n") and "Traceback" not in err, err
    return lines[0]


def contents(folder: Path) -> dict:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# ------------------------------------------------------------------ the claim of a folder
def test_a_folder_held_by_a_live_process_is_refused_and_a_dead_ones_claim_is_not(tmp_path):
    """The claim is an exclusive lock that records its process id: a second run is refused
    at once, naming that process; once the holder is killed (no clean-up), the next run
    takes the folder."""
    folder = tmp_path / "out"
    folder.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            f"fd = os.open({str(folder / CLAIM)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, b'%d\\n' % os.getpid())\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        busy = rf"being written by another run \(process {holder.pid}\)"
        with pytest.raises(OutputError, match=busy), claim(folder):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert (folder / CLAIM).exists()  # left behind by the killed process
    with claim(folder):
        assert (folder / CLAIM).read_text() == f"{os.getpid()}\n"
    assert sorted(folder.iterdir()) == []  # the claim goes with the run


def test_a_claim_on_a_new_folder_that_writes_nothing_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError, match="stopped"):
        with claim(tmp_path / "new" / "out"):
            raise RuntimeError("stopped")
    assert not (tmp_path / "new" / "out").exists()


# ---------------------------------------------------------------- case 1: export
def test_export_never_writes_over_its_checkpoint_a_link_or_another_file(ckpt, tmp_path):
    """Issue 22, case 1: out= the checkpoint exited 0 and the checkpoint held ONNX bytes;
    any existing file was replaced without force."""
    from xslicq.export import run

    model = Path(shutil.copy(ckpt, tmp_path / "m.ckpt"))
    before = model.read_bytes()
    for force in (False, True):
        with pytest.raises(OutputError, match=f"output {model} is the input {model}"):
            run({"checkpoint": str(model), "out": str(model), "force": force})
    assert model.read_bytes() == before

    other = tmp_path / "notes.onnx"
    other.write_text("mine")
    (tmp_path / "link.onnx").symlink_to(other)
    for force in (False, True):
        with pytest.raises(OutputError, match="did not write it"):
            run({"checkpoint": str(model), "out": str(other), "force": force})
        with pytest.raises(OutputError, match="link.onnx is a symbolic link"):
            run({"checkpoint": str(model), "out": str(tmp_path / "link.onnx"), "force": force})
    assert other.read_text() == "mine"

    out = tmp_path / "m.onnx"
    assert run({"checkpoint": str(model), "out": str(out)}) == [out]
    first = out.read_bytes()
    with pytest.raises(OutputError, match=r"an earlier export wrote it\); use force=true"):
        run({"checkpoint": str(model), "out": str(out)})
    assert run({"checkpoint": str(model), "out": str(out), "force": True}) == [out]
    assert out.read_bytes() == first  # the same network again
    manifest = json.loads((tmp_path / ".xslicq-export.json").read_text())
    assert manifest["files"] == {"m.onnx": outputs.sha256(out)}


# ---------------------------------------------------------------- case 2: stream
def test_stream_force_never_replaces_reference_stems_nor_writes_through_a_link(
    causal, tiny_musdb, tmp_path, capsys
):
    """Issue 22, case 2: stream --force replaced the MUSDB reference stems beside the
    mixture, and wrote through a stem that is a link."""
    from xslicq.stream import main

    track = shutil.copytree(tiny_musdb / "test" / "test_0", tmp_path / "track")
    before = contents(track)
    status, _, err = cli(main, capsys, track / "mixture.wav", track, "--model", causal, "--force")
    assert status == 2  # an output refused before the work: a usage error
    assert "would overwrite: vocals.wav, drums.wav, bass.wav, other.wav" in one_error_line(err)
    assert contents(track) == before

    out, outside = tmp_path / "out", song(tmp_path / "outside.wav")
    out.mkdir()
    (out / "vocals.wav").symlink_to(outside)
    kept = outside.read_bytes()
    status, _, err = cli(main, capsys, track / "mixture.wav", out, "--model", causal, "--force")
    assert status == 2 and f"output {out / 'vocals.wav'} is a symbolic link" in one_error_line(err)
    assert outside.read_bytes() == kept


# ---------------------------------------------------------------- cases 3, 4, 14: separate
def test_separate_never_writes_over_its_input(ckpt, tmp_path, capsys):
    """Issue 22, case 3: separate out/vocals.wav --out out --force replaced its own input."""
    from xslicq.separate import main

    out = tmp_path / "out"
    assert cli(main, capsys, song(tmp_path / "a.wav"), "--checkpoint", ckpt, "--out", out)[0] == 0
    before = contents(out)
    status, _, err = cli(
        main, capsys, out / "vocals.wav", "--checkpoint", ckpt, "--out", out, "--force"
    )
    assert status == 2
    assert f"output {out / 'vocals.wav'} is the input {out / 'vocals.wav'}" in one_error_line(err)
    assert contents(out) == before


def test_two_separations_into_one_new_folder_at_once_one_is_refused(
    ckpt, tmp_path, capsys, monkeypatch
):
    """Issue 22, case 4: two runs into the same new --out both succeeded and one's stems
    replaced the other's. Now the second is refused while the first holds the folder."""
    from xslicq import separate

    holding, release = threading.Event(), threading.Event()
    write = separate.write_outputs

    def held_write(*args, **kwargs):  # the first run stops inside its claim
        holding.set()
        assert release.wait(60)
        return write(*args, **kwargs)

    monkeypatch.setattr(separate, "write_outputs", held_write)
    out, first = tmp_path / "out", {}
    a, b = song(tmp_path / "a.wav", seed=1), song(tmp_path / "b.wav", seed=2)
    args = ("--checkpoint", str(ckpt), "--out", str(out))
    thread = threading.Thread(target=lambda: first.update(status=separate.main([str(a), *args])))
    thread.start()
    try:
        assert holding.wait(120)
        assert separate.main([str(b), *args]) == 2  # refused: the folder is taken
    finally:
        release.set()
        thread.join()
    err = capsys.readouterr().err
    assert f"is being written by another run (process {os.getpid()})" in err
    assert first["status"] == 0
    manifest = json.loads((out / ".xslicq-separate.json").read_text())
    assert manifest["input"] == str(a.resolve())
    assert all(manifest["files"][n] == outputs.sha256(out / n) for n in STEMS)


def test_a_full_disk_in_separate_is_one_line_and_the_next_run_is_not_refused(
    ckpt, tmp_path, capsys, monkeypatch
):
    """Issue 22, case 14: a full disk gave "System error.", left a manifest behind, and the
    next run was refused with "not empty (it holds )" until --force."""
    from xslicq.separate import main

    def full(self, data):  # what libsndfile says when the disk is full
        raise RuntimeError("System error.")

    out, mix = tmp_path / "out", song(tmp_path / "mix.wav")
    with monkeypatch.context() as m:
        m.setattr(sf.SoundFile, "write", full)
        m.setattr(outputs.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0))
        status, _, err = cli(main, capsys, mix, "--checkpoint", ckpt, "--out", out)
    assert status == 1
    assert "no space left on the disk (0.0 MiB free)" in one_error_line(err)
    assert sorted(p.name for p in out.iterdir()) == [".xslicq-separate.json"]
    assert json.loads((out / ".xslicq-separate.json").read_text())["files"] == {}
    status, _, err = cli(main, capsys, mix, "--checkpoint", ckpt, "--out", out)  # no --force
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted([".xslicq-separate.json", *STEMS])


# ---------------------------------------------------------------- case 5: evaluate
def test_evaluation_folders_are_named_by_checkpoint_data_set_split_and_metric():
    """Issue 22, case 5: <run>/eval/last_test_<metric> whatever the data set, so a second
    data set's evaluation replaced the first's."""
    ckpt = "o/run/checkpoints/last.ckpt"
    synthetic = compose_config("evaluate", [f"checkpoint={ckpt}", "metric=sdr"])
    musdb = compose_config(
        "evaluate", [f"checkpoint={ckpt}", "data=musdb", "data.root=/d/MUSDB18-HQ"]
    )
    assert synthetic.out == "o/run/eval/last_synthetic-24x20.0s-seed0_test_sdr"
    assert musdb.out == "o/run/eval/last_MUSDB18-HQ_test_museval"
    cadenza = compose_config("cadenza", [f"checkpoint={ckpt}", "split=valid"])
    assert cadenza.out == "o/run/cadenza/last_synthetic-24x20.0s-seed0_valid"


def evaluate_config(ckpt, root, out, *overrides):
    cfg = compose_config(
        "evaluate",
        [
            f"checkpoint={ckpt}",
            f"data.root={root}",
            "data.synthetic=null",
            "metric=sdr",
            "workers=0",
            f"out={out}",
            *overrides,
        ],
    )
    return cfg


def test_a_second_evaluation_into_the_same_folder_needs_force(ckpt, tiny_musdb, tmp_path):
    from xslicq.evaluate import run

    out = tmp_path / "eval"
    run(evaluate_config(ckpt, tiny_musdb, out))
    before = contents(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="use force=true to replace the results"):
        run(evaluate_config(ckpt, tiny_musdb, out))
    assert contents(out) == {**before, "notes.txt": b"mine"}
    (out / "summary.md").unlink()
    (out / "summary.md").symlink_to(out / "notes.txt")
    with pytest.raises(OutputError, match="summary.md is a symbolic link"):
        run(evaluate_config(ckpt, tiny_musdb, out, "force=true"))
    (out / "summary.md").unlink()
    run(evaluate_config(ckpt, tiny_musdb, out, "force=true"))
    assert (out / "notes.txt").read_text() == "mine"
    assert contents(out)["summary.json"] == before["summary.json"]


# ---------------------------------------------------------------- case 6: synthetic
@needs_fluidsynth
def test_synthetic_force_keeps_a_user_file_in_a_track_folder(tmp_path):
    """Issue 22, case 6: --force deleted a user file placed inside a generated track
    folder (the whole synth_* folder was removed)."""
    from xslicq.data.synthetic import generate_dataset

    root = tmp_path / "set"
    kw = dict(tracks=2, seconds=2.0, valid_tracks=0, test_tracks=1, progress=False, workers=1)
    m = generate_dataset(root, seed=0, **kw)
    track = root / "test" / m["split"]["test"][0]
    (track / "notes.txt").write_text("mine")
    generate_dataset(root, seed=1, force=True, **kw)
    assert (track / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- case 13: unwritable folders
@pytest.mark.parametrize(
    "module, args, status",
    [
        ("xslicq.train", [f"hydra.run.dir={UNWRITABLE}"], 2),
        ("xslicq.evaluate", ["checkpoint=CKPT", f"out={UNWRITABLE}"], 2),
        ("xslicq.oracle", [f"out={UNWRITABLE}"], 2),
        ("xslicq.cadenza", ["checkpoint=CKPT", f"out={UNWRITABLE}"], 2),
        ("xslicq.export", ["checkpoint=CKPT", f"out={UNWRITABLE}/m.onnx"], 2),
    ],
)
def test_an_unwritable_output_folder_is_one_error_line(ckpt, module, args, status):
    """Issue 22, case 13: a traceback (Hydra's, or from writing the export)."""
    r = run_module(module, *[a.replace("CKPT", str(ckpt)) for a in args], timeout=300)
    assert r.returncode == status, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "error: " in x]
    assert f"{UNWRITABLE} cannot be written: no new file can be made in /proc" in line


def test_a_checkpoint_folder_that_refuses_writes_is_one_error_and_keeps_last_ckpt(
    tmp_path, monkeypatch
):
    """Issue 22, cases 13 and 14: an immutable checkpoint folder (chattr +i: EPERM on the
    rename) and a full disk (torch's zip writer: "unexpected pos") were tracebacks that did
    not name the cause; the checkpoint already there stays intact."""
    from xslicq import callbacks

    last = tmp_path / "last.ckpt"
    callbacks.AtomicCheckpointIO().save_checkpoint({"epoch": 1}, last)
    before = last.read_bytes()

    def immutable(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(dst))

    with monkeypatch.context() as m:
        m.setattr(callbacks.os, "replace", immutable)
        with pytest.raises(OutputError, match=f"cannot write {last}: permission denied"):
            callbacks.AtomicCheckpointIO().save_checkpoint({"epoch": 2}, last)

    def full(obj, f):
        f.write(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64")

    with monkeypatch.context() as m:
        m.setattr(callbacks.torch, "save", full)
        m.setattr(outputs.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0))
        with pytest.raises(OutputError, match=f"cannot write {last}: no space left on the disk"):
            callbacks.AtomicCheckpointIO().save_checkpoint({"epoch": 2}, last)
    assert last.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file
    assert torch.load(last, weights_only=True) == {"epoch": 1}

    # a checkpoint that is a link is replaced by a file, never written through
    outside = tmp_path.parent / f"{tmp_path.name}-outside.ckpt"
    outside.write_bytes(b"not a checkpoint of this run")
    link = tmp_path / "linked.ckpt"
    link.symlink_to(outside)
    callbacks.AtomicCheckpointIO().save_checkpoint({"epoch": 3}, link)
    assert outside.read_bytes() == b"not a checkpoint of this run"
    assert not link.is_symlink() and torch.load(link, weights_only=True) == {"epoch": 3}


def test_train_reports_an_output_error_as_one_line(monkeypatch, capsys):
    """The training command's error line covers the output errors (a full disk while saving
    a checkpoint, above) as it does a bad value; a full disk is a runtime failure, status 1
    (a bad value is 2)."""
    from xslicq import train

    def fail(cfg):
        raise OutputError("cannot write x/last.ckpt: no space left on the disk (0.0 MiB free)")

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    monkeypatch.setattr(train, "train", fail)
    cfg = compose_config("train", [], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    with pytest.raises(SystemExit) as stop:
        train.main.__wrapped__(cfg)
    assert stop.value.code == 1
    assert capsys.readouterr().err == (
        "error: cannot write x/last.ckpt: no space left on the disk (0.0 MiB free)\n"
    )


# ------------------------------------------------------- done when: inputs and links
def test_outputs_at_their_own_input_or_a_link_are_refused(
    ckpt, causal, tiny_musdb, tmp_path, capsys
):
    """Every command that writes files, its output pointed at its own input and at a
    symbolic link: refused, and the input and the link's target are unchanged."""
    from xslicq.evaluate import run as evaluate
    from xslicq.oracle import run as oracle
    from xslicq.separate import main as separate
    from xslicq.stream import main as stream

    outside = song(tmp_path / "outside.wav", seed=5)
    kept = outside.read_bytes()
    linked = tmp_path / "linked"
    linked.mkdir()
    for name in STEMS:
        (linked / name).symlink_to(outside)
    mix = song(linked / "mix.wav")

    # separate and stream: the song as a stem, and stems that are links
    for main, model in ((separate, ("--checkpoint", ckpt)), (stream, ("--model", causal))):
        out = tmp_path / f"own-{main.__module__}"
        out.mkdir()
        own = song(out / "vocals.wav")
        before = own.read_bytes()
        for song_in, folder in ((own, out), (mix, linked)):
            args = (song_in, "--out", folder) if main is separate else (song_in, folder)
            status, _, err = cli(main, capsys, *model, *args, "--force")
            assert status == 2, err
            if song_in is own:
                assert f"output {own} is the input {own}" in one_error_line(err)
            else:
                link = linked / "vocals.wav"
                assert f"output {link} is a symbolic link" in one_error_line(err)
        assert own.read_bytes() == before

    # evaluate and oracle: the results folder is the data set (an input)
    with pytest.raises(OutputError, match=f"output folder {tiny_musdb} is the input"):
        evaluate(evaluate_config(ckpt, tiny_musdb, tiny_musdb, "force=true"))
    data = [f"data.root={tiny_musdb}", "data.synthetic=null", "workers=0"]
    cfg = compose_config("oracle", [*data, f"out={tiny_musdb}", "force=true"])
    with pytest.raises(OutputError, match=f"output folder {tiny_musdb} is the input"):
        oracle(cfg)
    assert outside.read_bytes() == kept

    # data.synthetic: --out at its SoundFont (an input) or at a link to a file
    from xslicq.data.synthetic import generate_dataset

    font = tmp_path / "font.sf2"
    font.write_bytes(b"RIFF")
    (tmp_path / "font-link").symlink_to(font)
    for out in (font, tmp_path / "font-link"):
        with pytest.raises(FileExistsError, match=f"{out} exists and is not a folder"):
            generate_dataset(out, tracks=2, seconds=2.0, soundfont=font, progress=False)
    assert font.read_bytes() == b"RIFF"


@pytest.mark.parametrize(
    "module, args",
    [
        (
            "xslicq.train",
            ["hydra.run.dir=ROOT", "data.root=ROOT", "data.synthetic=null", "trainer=debug"],
        ),
        ("xslicq.cadenza", ["checkpoint=CKPT", "data.root=ROOT", "data.synthetic=null", "out=R"]),
        ("xslicq.export", ["checkpoint=CKPT", "out=CKPT", "force=true"]),
    ],
)
def test_hydra_commands_refuse_their_input_as_output(ckpt, tiny_musdb, module, args):
    """The Hydra commands, through the command line: one error line, before Hydra writes
    its record into the folder."""
    before = sorted(p.name for p in tiny_musdb.iterdir())
    args = [a.replace("CKPT", str(ckpt)) for a in args]
    args = [a.replace("ROOT", str(tiny_musdb)).replace("=R", f"={tiny_musdb}") for a in args]
    r = run_module(module, *args, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]  # usage
    assert " is the input " in r.stderr
    assert sorted(p.name for p in tiny_musdb.iterdir()) == before


# ------------------------------------------------------- done when: two runs at once
def synthetic_available() -> bool:
    return shutil.which("fluidsynth") is not None


@pytest.mark.slow
def test_every_command_run_twice_at_once_into_one_output_writes_it_once(
    ckpt, causal, tiny_musdb, tmp_path
):
    """separate, stream, export, evaluate, oracle, cadenza, data.synthetic and train, each
    started twice at the same instant into the same output: exactly one succeeds (the
    synthetic set's generator lets the second find the first's set done, writing nothing),
    and every file there is the one the winner wrote (its manifest's digests)."""
    a = song(tmp_path / "a.wav", seconds=2.0, seed=1)
    o = tmp_path / "o"
    data = [f"data.root={tiny_musdb}", "data.synthetic=null", "workers=0"]
    commands = {
        "separate": ["xslicq.separate", a, "--checkpoint", ckpt, "--out", o / "separate"],
        "stream": ["xslicq.stream", a, o / "stream", "--model", causal],
        "export": ["xslicq.export", f"checkpoint={ckpt}", f"out={o / 'export' / 'm.onnx'}"],
        "evaluate": [
            "xslicq.evaluate",
            f"checkpoint={ckpt}",
            "metric=sdr",
            f"out={o / 'evaluate'}",
            *data,
        ],
        "oracle": ["xslicq.oracle", f"out={o / 'oracle'}", *data],
        "cadenza": [
            "xslicq.cadenza",
            f"checkpoint={ckpt}",
            "seconds=2",
            f"out={o / 'cadenza'}",
            *data,
        ],
        "train": [
            "xslicq.train",
            f"hydra.run.dir={o / 'train'}",
            "trainer=debug",
            f"data.root={tiny_musdb}",
            *TINY_DATA,
            *TINY_MODEL,
            "log_media=false",
        ],
    }
    if synthetic_available():
        commands["synthetic"] = [
            "xslicq.data.synthetic",
            "--out",
            o / "synthetic",
            "--tracks",
            "2",
            "--seconds",
            "2",
            "--workers",
            "1",
            "--no-progress",
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, argv in commands.items():
        pair = [
            subprocess.Popen(
                [sys.executable, "-m", *map(str, argv)],
                cwd=tmp_path,
                env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        runs[name] = [(p, *p.communicate(timeout=600)) for p in pair]
    for name, pair in runs.items():
        codes = sorted(p.returncode for p, *_ in pair)
        if name == "synthetic":
            assert codes == [0, 0], pair  # the second waits for the first and finds it done
            continue
        # the second run is refused before its work: a usage error (docs/cli.md)
        assert codes == [0, 2], (name, [(p.returncode, e[-1500:]) for p, _, e in pair])
        (err,) = [e for p, _, e in pair if p.returncode]
        assert "Traceback" not in err
        assert (
            "being written by another run" in err
            or "not empty" in err
            or ("earlier" in err or "another run's" in err)
        ), (name, err[-1500:])
    for name in ("separate", "stream", "evaluate", "oracle", "cadenza"):
        folder = o / name
        manifest = json.loads((folder / f".xslicq-{name}.json").read_text())
        assert manifest["files"], name
        for rel, digest in manifest["files"].items():
            assert outputs.sha256(folder / rel) == digest, (name, rel)
    export = json.loads((o / "export" / ".xslicq-export.json").read_text())
    assert export["files"] == {"m.onnx": outputs.sha256(o / "export" / "m.onnx")}
    assert (o / "train" / "checkpoints" / "last.ckpt").is_file()
