"""Separate a song into stems.

    python -m xslicq.separate song.wav --checkpoint model.ckpt --out DIR
    python -m xslicq.separate song.wav --model model.onnx --out DIR      # no torch needed

``--checkpoint`` runs a training checkpoint with torch; ``--model`` runs a network exported
by ``python -m xslicq.export`` with onnxruntime and the sliCQT's NumPy backend
(:class:`xslicq.inference.OnnxSeparator`) and needs no torch, Lightning or Hydra, so it
works in the inference-only install (``pip install "xslicq[infer]"``). It never imports
Lightning, Hydra or torchaudio; where torch is installed, the transform classes (torch
modules then) still import torch and OmegaConf (about 650 MiB of the process).

Long songs are separated in bounded memory: ``--chunk-seconds`` (10 s) chunks cross-faded over
1 s, or, for a causal model (``python -m xslicq.train experiment=stream``, without Wiener-EM),
streamed slice by slice with the network's state carried through the whole song,
``--chunk-seconds`` of input at a time: with ``--checkpoint`` or ``--model``, the stems of
``python -m xslicq.stream`` with the same model to float tolerance. Files are created with
the mode of any new file (0666 less the umask), as the stream's.

Reads WAV/FLAC/OGG (and MP3 with libsndfile >= 1.1) with soundfile and anything else
(MP4/M4A, STEMS) through ffmpeg; writes ``<target>.wav`` per target (and ``accompaniment.wav`` with
``--accompaniment``) at the input's sample rate, length and channel count.

Audio that is cut short (a header promising more than the file holds) or damaged is
refused, naming the file. The output folder keeps a manifest, ``.xslicq-separate.json``,
of the files separate wrote there (with their SHA-256), the input and the checkpoint:
separate never writes over a file it did not write; ``--force`` replaces its own
earlier stems (and removes those this run does not write again) and leaves other files
alone. Nor does it write through a symbolic link or onto its input, or into a folder
another run is writing (the output policy of every command, :mod:`xslicq.outputs`). Output
folders are checked before the separation starts, and every error (a full disk included)
is one ``error: ...`` line with exit status 1.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from pathlib import Path

import soundfile as sf

from .audio import load_audio
from .checks import is_number
from .cli import ArgumentParser, fail, run_command, temporary_file
from .errors import ConfigError, ResourceError
from .inference import MAX_CHUNK_SECONDS
from .outputs import OutputError, OutputFolder, check_writable, claim, write_failure

__all__ = ["MANIFEST", "OutputError", "main", "plan_outputs", "separate_file", "write_outputs"]

MANIFEST = ".xslicq-separate.json"  # separate's manifest (xslicq.outputs.OutputFolder)


# ---------------------------------------------------------------------- reading audio
# ---------------------------------------------------------------------- the output folder
def _folder(out: Path, inputs=()) -> OutputFolder:
    return OutputFolder(out, "separate", inputs)


def check_output_folder(out: Path) -> None:
    """An :class:`OutputError` unless ``out`` is, or can be made as, a folder this process
    can write in (checked by creating and removing a file there)."""
    check_writable(out)


def read_manifest(out: Path) -> dict:
    """The manifest separate left in ``out`` (``{}`` when there is none)."""
    return _folder(out).read_manifest()


def plan_outputs(out: Path, names: list[str], force: bool, inputs=()) -> list[str]:
    """Check that ``names`` (file names) can be written in ``out``; return separate's own
    earlier files there that this run does not write again (``--force`` removes them).

    ``out``'s own files are those its manifest lists whose contents are unchanged. Any
    other file in the way, a symbolic link and any of ``inputs`` (the song, the model) are
    an :class:`OutputError` naming it, ``--force`` or not; a folder that is not empty needs
    ``force`` (:meth:`xslicq.outputs.OutputFolder.plan`)."""
    return _folder(out, inputs).plan(names, force, what="stems")


def write_outputs(out: Path, stems, rate: int, stale: list[str], source: dict) -> None:
    """Write ``stems`` as ``<name>.wav`` (float) into ``out``, remove ``stale`` (separate's
    own earlier files) and record them all in the manifest. ``stems`` is one
    ``{name: (channels, samples)}`` dict or an iterable of such dicts, consecutive stretches
    of the stems written as they come (so no whole stem need be held). Each WAV is written
    to a temporary file and renamed; the manifest lists a file before it is written, so a
    run that stops midway leaves no file that a later ``--force`` would refuse to replace,
    and after a failure (a full disk: one error that says so) it lists only the files that
    are there. Every file gets the mode of any new file (0666 less the umask), as the
    stream's."""
    spans = iter([stems] if isinstance(stems, dict) else stems)
    first = next(spans)
    folder = _folder(out)
    folder.begin([f"{name}.wav" for name in first], stale, source)
    tmps, writers = {}, {}
    done = False
    try:
        for name, stem in first.items():
            try:
                handle, tmps[name] = temporary_file(out, f".{name}-", ".wav.partial")
                os.close(handle)
                writers[name] = sf.SoundFile(
                    tmps[name], "w", rate, stem.shape[0], subtype="FLOAT", format="WAV"
                )
            except (OSError, RuntimeError) as err:
                raise write_failure(err, out / f"{name}.wav") from None
        for span in itertools.chain([first], spans):
            for name, stem in span.items():
                try:
                    writers[name].write(stem.T)
                except RuntimeError as err:  # libsndfile's: a full disk, a file size limit
                    raise write_failure(err, out / f"{name}.wav") from None
        for name, tmp in tmps.items():
            try:
                writers.pop(name).close()
                os.replace(tmp, out / f"{name}.wav")
            except (OSError, RuntimeError) as err:
                raise write_failure(err, out / f"{name}.wav") from None
            folder.record(f"{name}.wav")
        folder.finish(stale)
        done = True
    finally:
        for writer in writers.values():
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        if not done:
            folder.settle()


def _with_accompaniment(spans):
    """Add ``accompaniment`` (everything but vocals) to every stretch of the stems."""
    for span in spans:
        span["accompaniment"] = sum(v for k, v in span.items() if k != "vocals")
        yield span


# ---------------------------------------------------------------------- the command
def load_separator(checkpoint=None, model=None, device: str = "cpu", chunk_seconds=10.0):
    """The separator of a training ``checkpoint`` (torch) or of an exported ``model``
    (onnxruntime, no torch needed); exactly one of the two."""
    if (checkpoint is None) == (model is None):
        raise ValueError("give either --checkpoint (a .ckpt) or --model (an exported .onnx)")
    if model is not None:
        from .inference import OnnxSeparator

        return OnnxSeparator.from_file(model, device=device, chunk_seconds=chunk_seconds)
    from .separator import Separator

    return Separator.from_checkpoint(checkpoint, device=device, chunk_seconds=chunk_seconds)


def separate_file(
    audio,
    checkpoint=None,
    out=None,
    *,
    model=None,
    force: bool = False,
    accompaniment: bool = False,
    device: str = "cpu",
    wiener: int | None = None,
    chunk_seconds: float = 10.0,
    any_rate: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Separate the song ``audio`` with ``checkpoint`` (or the exported ``model``) into
    ``out``; return the files written. Every value, the output folder, the model and the
    audio are checked before the separation starts; each problem is one ValueError or
    OSError naming it (a setting's: a :class:`~xslicq.errors.ConfigError`)."""
    if out is None:
        raise ConfigError("no output folder given (--out)")
    out = Path(out)
    if model is None and checkpoint is not None:
        from .config import check_device

        check_device(device, "--device")
    if not is_number(chunk_seconds, finite=True) or chunk_seconds <= 0:
        raise ConfigError(f"--chunk-seconds must be a finite number > 0, got {chunk_seconds}")
    if chunk_seconds > MAX_CHUNK_SECONDS:
        raise ConfigError(
            f"--chunk-seconds must be at most {MAX_CHUNK_SECONDS:g} (memory grows with it), "
            f"got {chunk_seconds:g}"
        )
    if wiener is not None and wiener < 0:
        raise ConfigError(f"--wiener must be >= 0, got {wiener}")
    check_output_folder(out)
    waveform, rate = load_audio(audio)
    separator = load_separator(checkpoint, model, device, chunk_seconds)
    names = list(separator.targets)
    if accompaniment and "vocals" not in names:
        raise ValueError(
            "--accompaniment writes everything but the vocals, and this model has no vocals "
            f"target (its targets: {', '.join(names)}); leave --accompaniment out"
        )
    if accompaniment:
        names.append("accompaniment")
    if wiener is not None:
        separator.wiener_iterations = wiener
    source = {"input": str(Path(audio).resolve())}
    if model is not None:
        source["model"] = str(Path(model).resolve())
    else:
        source["checkpoint"] = str(Path(checkpoint).resolve())
    # one run at a time in `out`: planned and written under its claim (xslicq.outputs)
    with claim(out):
        inputs = [audio, model if model is not None else checkpoint]
        stale = plan_outputs(out, [f"{n}.wav" for n in names], force, inputs)
        # both engines: the stems a chunk at a time, written as they come (no whole stem held)
        spans = separator.separate_spans(waveform, rate, progress=progress, any_rate=any_rate)
        if "accompaniment" in names:
            spans = _with_accompaniment(spans)
        write_outputs(out, spans, rate, stale, source)
    return [out / f"{n}.wav" for n in names]


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m xslicq.separate", description=__doc__.splitlines()[0])
    parser.add_argument("audio", help="the song to separate")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a training checkpoint (.ckpt), run with torch")
    source.add_argument(
        "--model",
        help="a network exported by python -m xslicq.export (.onnx), run with onnxruntime "
        "(no torch needed)",
    )
    parser.add_argument("--out", required=True, help="folder for the stems")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the stems an earlier separate wrote in --out (other files are kept)",
    )
    parser.add_argument(
        "--accompaniment",
        action="store_true",
        help="also write accompaniment.wav (everything but vocals)",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda, cuda:N or auto (--model: cpu, cuda or auto)"
    )
    parser.add_argument(
        "--wiener",
        type=int,
        default=None,
        help="Wiener-EM refinement iterations (default: the checkpoint's)",
    )
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        default=10.0,
        help=f"chunk length: memory grows with it (default 10 s, at most {MAX_CHUNK_SECONDS:g})",
    )
    parser.add_argument(
        "--any-rate",
        action="store_true",
        help="separate audio at any sample rate (default: 8 kHz to 384 kHz)",
    )
    args = parser.parse_args(argv)
    # the exported model's path needs no torch; a checkpoint's catches torch's GPU errors
    out_of_memory = ()
    if args.checkpoint:
        try:
            import torch
        except ImportError:
            return fail(
                ResourceError(
                    "--checkpoint needs the training stack, and torch is not installed: "
                    "pip install 'xslicq[train]', or separate with an exported --model model.onnx"
                )
            )
        out_of_memory = (torch.cuda.OutOfMemoryError,)

    def work():
        try:
            return separate_file(
                args.audio,
                args.checkpoint,
                args.out,
                model=args.model,
                force=args.force,
                accompaniment=args.accompaniment,
                device=args.device,
                wiener=args.wiener,
                chunk_seconds=args.chunk_seconds,
                any_rate=args.any_rate,
                progress=True,
            )
        except out_of_memory:
            raise ResourceError(
                f"out of GPU memory on {args.device}; lower --chunk-seconds "
                f"(now {args.chunk_seconds:g}) or use --device cpu"
            ) from None

    # ImportError: onnxruntime missing for --model
    status, written = run_command(work, handled=(ValueError, OSError, ImportError))
    if status:
        return status
    print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
