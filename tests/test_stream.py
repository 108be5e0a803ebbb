"""Streaming (xslicq.stream): the causal configuration, its latency, parity of the streamed
stems with offline separation by the same system, the CLI on files and on raw PCM from
stdin, and one clear error for each bad input."""

import io
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from xslicq.data import SOURCES
from xslicq.stream import (
    FORMATS,
    Streamer,
    StreamError,
    TorchEngine,
    algorithmic_latency,
    main,
    raw_blocks,
    to_pcm,
)
from xslicq.system import SeparationSystem
from xslicq.train import train
from xslicq.transform.slicing import slice_window

from helpers import (
    ROOT,
    SR,
    compose_config,
    perturbed_system,
    rel_err,
    run_module,
    stream_blocks,
    tiny_train_config,
    tones_and_noise,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# streamed vs offline stems: max |difference| / max |offline stem|, over the whole signal
PARITY_RTOL = 1e-5
SMALL = ("experiment=stream", "model.hidden=8")  # the causal configuration, a tiny network


def causal_system(overrides=(), seed=0):
    """The experiment=stream system with a tiny network, its weights perturbed away from the
    initialisation (so that every stage matters), in eval mode."""
    return perturbed_system([*SMALL, *overrides], seed)


def offline(system, x):
    with torch.no_grad():
        return system(torch.from_numpy(x)[None])[0].numpy()


def assert_parity(streamed, reference):
    assert streamed.shape == reference.shape
    err = np.abs(streamed - reference).max() / np.abs(reference).max()
    assert err <= PARITY_RTOL, err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_musdb):
    out = tmp_path_factory.mktemp("run")
    train(tiny_train_config(out, tiny_musdb, [*SMALL, "log_media=false"]))
    return out / "checkpoints" / "last.ckpt"


# ---------------------------------------------------------------------- configuration
def test_the_stream_experiment_is_causal_and_within_200_ms():
    cfg = compose_config("train", ["experiment=stream"])
    assert cfg.transform.scale == "bark" and cfg.model.unidirectional is True
    assert cfg.system.wiener_iterations == 0
    system = SeparationSystem.from_config(cfg, training=False)
    t = system.transform
    assert (t.sllen, t.trlen, system.r2m.T) == (6400, 1600, 4)
    assert system.model.causal and system.form == "frames"
    latency = algorithmic_latency(t.sllen, t.trlen)
    assert latency == 6400 - (1600 - 800) == 5600
    assert 1000 * latency / SR == pytest.approx(126.98, abs=0.01)  # <= 200 ms
    # the samples the stream does not wait for are exactly those under the zero window
    w = slice_window(t.sllen, t.trlen)
    margin = t.sllen - latency
    assert np.all(w[-margin:] == 0) and w[-margin - 1] > 0


def test_slice_analysis_and_synthesis_are_the_halves_of_the_transform():
    t = causal_system().transform
    x = torch.from_numpy(tones_and_noise(0.5))[None]
    import array_api_compat.torch as xp

    from xslicq.transform.slicing import slice_signal

    slices = slice_signal(xp, x, t.slice_window.float(), t.sllen, t.nb_slices(x.shape[-1]))
    coefs = t.analyse_slices(slices)
    for a, b in zip(coefs, t(x)):
        assert torch.equal(a, b)
    from xslicq.transform.slicing import overlap_add

    back = overlap_add(xp, t.synthesise_slices(coefs), t.sllen, x.shape[-1])
    assert torch.equal(back, t.inverse(coefs, length=x.shape[-1]))
    with pytest.raises(ValueError, match=r"expected slices of shape \(batch, channels, slices"):
        t.analyse_slices(slices[..., :-1])


# ---------------------------------------------------------------------- the stream
def test_output_is_final_exactly_one_latency_after_its_input():
    """Fed one sample at a time, a hop of output comes out when the last input sample under
    the non-zero window of the next slice arrives: no sample waits more than the latency,
    the first sample of every hop exactly that long."""
    engine = TorchEngine(causal_system())
    streamer = Streamer(engine)
    hop, latency = streamer.hop, streamer.latency
    x = tones_and_noise(0.4)
    waits = []
    for n in range(x.shape[1]):
        before = streamer.emitted
        streamer.push(x[:, n : n + 1])
        waits += [n + 1 - k for k in range(before, streamer.emitted)]  # arrived -> out
        assert streamer.emitted == max(0, (n + 1 + streamer.margin) // hop - 1) * hop
    assert len(waits) == (x.shape[1] + streamer.margin) // hop * hop - hop
    assert max(waits) == latency == 5600
    assert waits[0] == latency and waits[hop - 1] == latency - hop + 1


class WindowEngine:
    """A numpy engine with a known answer: every target is the windowed slice, so the
    overlap-added output is the input (the slice windows sum to one). Its state counts the
    slices it has seen."""

    sample_rate, channels, targets, sllen, trlen, lookahead = SR, 2, ("a", "b"), 64, 16, 0

    def __init__(self):
        self.window = slice_window(self.sllen, self.trlen).astype(np.float32)
        self.calls = []  # slices per step

    def initial_state(self):
        return 0

    def step(self, frames, state):
        c, s, n = frames.shape
        assert (c, n) == (2, self.sllen) and s >= 1 and frames.dtype == np.float32
        self.calls.append(s)
        return np.stack([frames * self.window] * 2), state + s


@pytest.mark.parametrize("length, block", [(1, 1), (40, 7), (1000, 1), (1000, 33), (1000, 5000)])
def test_the_stream_gives_back_the_input_through_an_identity_engine(length, block):
    engine = WindowEngine()
    x = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    out = stream_blocks(engine, x, block)
    assert out.shape == (2, 2, length)
    np.testing.assert_allclose(out, np.stack([x, x]), atol=1e-6, rtol=0)
    assert Streamer(engine).latency == 64 - (16 - 8) == 56
    assert sum(engine.calls) == -(-length // 32) + 1  # slices 0 .. ceil(length / hop)
    # the slices a block completes go to the engine in one step: one slice a step for
    # blocks under a hop (but the end's, which completes the last two slices at once),
    # two steps for a block of the whole input (the slices it completes, then the end's)
    if block < 32:
        assert set(engine.calls[:-1]) <= {1} and engine.calls[-1] <= 2
    if block >= length:
        assert len(engine.calls) <= 2


def test_a_block_of_many_slices_is_one_step_with_the_same_output():
    """Blocks of many slices (as separate pushes a causal model's song) give the stems of
    one slice a step: the frames cut from the block are the slices the stream would cut."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3000)).astype(np.float32)

    class Scaled(WindowEngine):  # slice s times (s + 1): the state must carry the count
        def step(self, frames, state):
            out, after = super().step(frames, state)
            k = np.arange(state, after, dtype=np.float32) + 1
            return out * k[:, None], after

    one = stream_blocks(Scaled(), x, 1)
    for block in (500, 1024, 3000):
        engine = Scaled()
        np.testing.assert_array_equal(stream_blocks(engine, x, block), one)
        assert max(engine.calls) > 1


def test_the_stream_needs_no_torch():
    """The stream, its readers and writers import without torch (an ONNX-only install)."""
    code = "import sys, xslicq.stream; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("mask_sum_to_one", [False, True])
def test_streamed_stems_equal_offline_separation(mask_sum_to_one):
    system = causal_system([f"system.mask_sum_to_one={str(mask_sum_to_one).lower()}"])
    engine = TorchEngine(system)
    x = tones_and_noise(2.3)
    reference = offline(system, x)
    assert np.abs(reference).max() > 0.05
    assert np.abs(reference - x / 4).max() > 0.05  # not a trivial split
    for block in (1000, 4097, x.shape[1]):
        assert_parity(stream_blocks(engine, x, block), reference)
    short = x[:, :9000]  # one sample at a time: every slice at the earliest moment
    assert_parity(stream_blocks(engine, short, 1), offline(system, short))


@pytest.mark.parametrize("length", [1, 700, 3200, 6399])
def test_inputs_shorter_than_a_slice(length):
    system = causal_system()
    x = tones_and_noise(0.2)[:, :length]
    assert_parity(stream_blocks(TorchEngine(system), x, 333), offline(system, x))


def test_the_network_state_is_what_carries_the_past():
    """Resetting the network's state at every slice breaks the parity: the test can fail."""
    system = causal_system()
    engine = TorchEngine(system)
    x = tones_and_noise(1.0)
    step = engine.step
    engine.step = lambda frames, state: step(frames, engine.initial_state())
    err = np.abs(stream_blocks(engine, x, 1000) - offline(system, x)).max()
    assert err > 100 * PARITY_RTOL * np.abs(offline(system, x)).max()


@pytest.mark.parametrize(
    "overrides, name",
    [
        (["model=xumx_matrix", "model.hidden=4", "model.depth=1"], "XUMXMatrix"),
        (["model=umx", "model.hidden=8"], "OpenUnmix"),  # the bidirectional LSTM
        (["model=cdae_blocks", "model.hidden=4", "model.depth=1"], "CDAEBlocks"),
    ],
)
def test_non_causal_networks_are_refused(overrides, name):
    system = SeparationSystem.from_config(
        compose_config("train", ["transform=bark", *overrides]), training=False
    )
    with pytest.raises(StreamError, match=rf"network \({name}\) is not causal.*experiment=stream"):
        TorchEngine(system)


# ---------------------------------------------------------------------- raw PCM
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_raw_pcm_round_trip_in_odd_reads(fmt):
    x = np.clip(tones_and_noise(0.05, channels=2), -0.999, 0.999)
    data = to_pcm(x, fmt)

    class Trickle(io.BytesIO):  # a pipe that returns fewer bytes than asked
        def read(self, n=-1):
            return super().read(min(n, 777))

    got = np.concatenate(list(raw_blocks(Trickle(data), 2, fmt, 100)), axis=1)
    tol = {"s16le": 1 / 2**15, "s32le": 1e-7}.get(fmt, 0.0)
    np.testing.assert_allclose(got, x, atol=tol, rtol=0)
    with pytest.raises(StreamError, match="ends inside a frame: 3 trailing bytes"):
        list(raw_blocks(io.BytesIO(data + b"abc"), 2, fmt, 100))


# ---------------------------------------------------------------------- the command
def run_main(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read_stems(folder, targets):
    return np.stack([sf.read(folder / f"{t}.wav", dtype="float32")[0].T for t in targets])


def test_cli_streams_a_file_and_stdin_pcm_alike(checkpoint, tmp_path, capsys):
    from xslicq import Separator

    system = Separator.from_checkpoint(checkpoint).system
    targets = system.targets
    x = tones_and_noise(3.0, seed=1)
    wav = tmp_path / "in.wav"
    sf.write(wav, x.T, SR, subtype="FLOAT")
    status, _, err = run_main(capsys, "--model", checkpoint, wav, tmp_path / "a", "--block", 999)
    assert status == 0, err
    assert "algorithmic latency 5600 samples (127.0 ms)" in err and "real-time factor" in err
    from_file = read_stems(tmp_path / "a", targets)
    assert_parity(from_file, offline(system, x))

    cmd = [sys.executable, "-m", "xslicq.stream", "--model", str(checkpoint), "--raw"]
    cmd += ["--rate", "44100", "--channels", "2", "--format", "f32le", "-", str(tmp_path / "b")]
    cmd += ["--stdout", "vocals", "--block", "1000", "--threads", "1"]
    r = subprocess.run(cmd, input=to_pcm(x, "f32le"), capture_output=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    np.testing.assert_array_equal(read_stems(tmp_path / "b", targets), from_file)
    piped = np.frombuffer(r.stdout, "<f4").reshape(-1, 2).T
    np.testing.assert_array_equal(piped, from_file[targets.index("vocals")])

    mono = x[:1]
    sf.write(wav, mono.T, SR, subtype="FLOAT")
    status, _, err = run_main(capsys, "--model", checkpoint, wav, tmp_path / "c")
    assert status == 0, err
    upmixed = offline(system, np.repeat(mono, 2, axis=0)).mean(1, keepdims=True)
    assert_parity(read_stems(tmp_path / "c", targets)[:, None], upmixed)


def one_error(run, message, status=1):
    """``run``: (exit status, stdout, stderr) of :func:`run_main`: ``status`` (1: a runtime
    failure, 2: a usage error) and one ``error:`` line, the last (after the line that
    announces the stream, for errors found while streaming), holding ``message``."""
    got, _, err = run
    lines = err.splitlines()
    assert got == status and lines[-1].startswith("error: "), err
    assert all(line.startswith("streaming at ") for line in lines[:-1]), err
    assert message in lines[-1], err


@pytest.fixture
def stdin(monkeypatch):
    """Replace stdin by given bytes."""

    def give(data: bytes):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    return give


def test_bad_input_is_one_clear_error(checkpoint, tmp_path, capsys, stdin):
    x = tones_and_noise(0.2)
    cases = []

    def case(args, message, data=None, status=1):
        cases.append((args, message, data, status))

    three = tmp_path / "three.wav"
    sf.write(three, np.tile(x[:1], (3, 1)).T, SR)
    case([three, tmp_path / "o"], f"{three} has 3 channels; the model takes mono or 2 channels")
    case(
        ["--raw", "--channels", "3", "-", tmp_path / "o"],
        "the raw input (stdin) has 3 channels",
        b"",
    )
    fast = tmp_path / "fast.wav"
    sf.write(fast, x.T, 48000)
    case([fast, tmp_path / "o"], f"{fast} is at 48000 Hz but the model separates 44100 Hz")
    case(
        ["--raw", "--rate", "22050", "-", tmp_path / "o"],
        "the raw input (stdin) is at 22050 Hz but the model separates 44100 Hz",
        b"",
    )
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2)), SR)
    case([empty, tmp_path / "o"], "the input holds no samples")
    case(["-", tmp_path / "o"], "the input holds no samples", b"")
    case(["--format", "u8", "-", tmp_path / "o"], "--format must be one of f32le", b"", 2)
    case(["-", tmp_path / "o"], "ends inside a frame: 5 trailing bytes", b"\0" * 13)
    nan = x.copy()
    nan[1, 4410] = np.nan
    case(["-", tmp_path / "o"], "NaN or inf samples (at 0.100 s)", to_pcm(nan, "f32le"))
    case([tmp_path / "missing.wav", tmp_path / "o"], "does not exist")
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    case([text, tmp_path / "o"], f"cannot read {text} as audio")
    # usage errors: the arguments and the output folder (status 2)
    case([three], "nothing to write: give an output folder, --stdout TARGET, or both", None, 2)
    case([three, tmp_path / "o", "--stdout", "piano"], "--stdout must name one of", None, 2)
    case([three, three], f"output folder {three} is a file", None, 2)
    for args, message, data, status in cases:
        if data is not None:
            stdin(data)
        one_error(run_main(capsys, "--model", checkpoint, *args), message, status)
    assert not (tmp_path / "o").exists()  # nothing written by a refused stream

    for model, message in [
        (tmp_path / "m.onnx", f"model {tmp_path / 'm.onnx'} does not exist"),
        (tmp_path / "m.pt", "--model must be a training checkpoint (.ckpt) or an ONNX model"),
        (tmp_path / "m.ckpt", "does not exist"),
    ]:
        one_error(run_main(capsys, "--model", model, three, tmp_path / "o"), message, 2)

    done = tmp_path / "done"
    wav = tmp_path / "in.wav"
    sf.write(wav, x.T, SR)
    assert run_main(capsys, "--model", checkpoint, wav, done)[0] == 0
    one_error(
        run_main(capsys, "--model", checkpoint, wav, done),
        f"output folder {done} exists and is not empty; use --force to replace the stems",
        2,
    )
    assert run_main(capsys, "--model", checkpoint, wav, done, "--force")[0] == 0


# ---------------------------------------------------------------------- separate
def separate_main(capsys, *args):
    from xslicq.separate import main as separate

    status = separate([str(a) for a in args])
    return status, capsys.readouterr().err


def stems_and_files(folder):
    """The stems in ``folder`` (J, C, N) and the permission bits of every file there."""
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    return read_stems(folder, SOURCES), modes


def test_separate_gives_the_streams_stems_for_a_causal_model(checkpoint, tmp_path, capsys):
    """python -m xslicq.separate streams a causal model (2.5 s of input at a time here, so
    two chunk borders) with the network's state carried: its stems are the stream's and
    the system's on the whole song at once, to 1e-5 (cross-faded chunks were 1% of the peak
    off, and their seams are where the error was)."""
    from xslicq import Separator

    sep = Separator.from_checkpoint(checkpoint, chunk_seconds=2.5, overlap_seconds=0.5)
    system = sep.system
    x = tones_and_noise(7.3, seed=2)
    wav = tmp_path / "song.wav"
    sf.write(wav, x.T, SR, subtype="FLOAT")
    status, err = separate_main(
        capsys, wav, "--checkpoint", checkpoint, "--out", tmp_path / "a", "--chunk-seconds", 2.5
    )
    assert status == 0, err
    status, _, err = run_main(capsys, "--model", checkpoint, wav, tmp_path / "b")
    assert status == 0, err
    separated, streamed = (
        read_stems(tmp_path / "a", system.targets),
        read_stems(tmp_path / "b", system.targets),
    )
    assert_parity(separated, streamed)
    assert rel_err(streamed, separated) <= PARITY_RTOL
    reference = offline(system, x)
    assert np.abs(reference - x / 4).max() > 0.01  # not a trivial split
    assert_parity(separated, reference)
    stems = sep.separate(x, SR)  # the API, the stems a span at a time as separate writes them
    assert_parity(np.stack([stems[t] for t in system.targets]), reference)
    spans = list(sep.separate_spans(x, SR))
    assert len(spans) == 4  # a span per 2.5 s of input pushed, and the stream's end
    mono = sep.separate(x[0], 22050)  # resampled whole, streamed, mixed back down
    assert all(m.shape == (1, x.shape[1]) and np.abs(m).max() > 0.01 for m in mono.values())
    # Wiener-EM is not causal: with it, the song is cut into cross-faded chunks again
    sep.wiener_iterations = 1
    assert sep._stream_engine() is None
    chunked = sep.separate(x, SR)["vocals"]
    assert np.abs(chunked - stems["vocals"]).max() > 1e-3 * np.abs(stems["vocals"]).max()


@pytest.mark.slow
def test_separate_and_stream_command_lines_agree_on_a_25_s_song(checkpoint, tmp_path):
    """The two commands as typed, on a song of three 10 s chunks, under umask 022: the same
    stems to 1e-5 (relative, and of the peak), every file 0644."""
    x = tones_and_noise(25.0, seed=3)
    wav = tmp_path / "song.wav"
    sf.write(wav, x.T, SR, subtype="FLOAT")
    umask = {"preexec_fn": lambda: os.umask(0o022)}
    a, b = tmp_path / "a", tmp_path / "b"
    r = run_module("xslicq.separate", wav, "--checkpoint", checkpoint, "--out", a, **umask)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_module("xslicq.stream", "--model", checkpoint, wav, b, "--threads", "1", **umask)
    assert r.returncode == 0, r.stderr[-2000:]
    (separated, modes_a), (streamed, modes_b) = stems_and_files(a), stems_and_files(b)
    assert rel_err(streamed, separated) <= PARITY_RTOL
    assert_parity(separated, streamed)
    assert set(modes_a) == {".xslicq-separate.json", *(f"{t}.wav" for t in SOURCES)}
    assert set(modes_a.values()) == set(modes_b.values()) == {0o644}


@pytest.fixture
def umask():
    """Set the process's umask for the test, put back after it."""
    before = os.umask(0o022)
    os.umask(before)
    yield os.umask
    os.umask(before)


@pytest.mark.parametrize("mask", [0o077, 0o027, 0o002])
def test_both_commands_create_files_with_the_umasks_mode(checkpoint, tmp_path, capsys, umask, mask):
    """One file mode: the stems (and separate's manifest) get 0666 less the umask, as any
    new file does, from separate (written to a temporary file and renamed) and from the
    stream (written in place)."""
    wav = tmp_path / "song.wav"
    sf.write(wav, tones_and_noise(0.5).T, SR, subtype="FLOAT")
    umask(mask)
    assert separate_main(capsys, wav, "--checkpoint", checkpoint, "--out", tmp_path / "a")[0] == 0
    assert run_main(capsys, "--model", checkpoint, wav, tmp_path / "b")[0] == 0
    for folder in (tmp_path / "a", tmp_path / "b"):
        modes = stems_and_files(folder)[1]
        assert modes and set(modes.values()) == {0o666 & ~mask}, (folder.name, modes)
    assert ".xslicq-separate.json" in stems_and_files(tmp_path / "a")[1]
