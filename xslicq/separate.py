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
alone. Output folders are checked before the separation starts, and every error is
one ``error: ...`` line with exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import soundfile as sf

from .audio import load_audio
from .cli import error_line, temporary_file

MANIFEST = ".xslicq-separate.json"


class OutputError(ValueError):
    """The output folder cannot take the stems; the message names the path and why."""


# ---------------------------------------------------------------------- reading audio
# ---------------------------------------------------------------------- the output folder
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output_folder(out: Path) -> None:
    """An :class:`OutputError` unless ``out`` is, or can be made as, a folder this process
    can write in (checked by creating and removing a file there)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == out else f" ({existing} is a file, so it cannot be made)"
        what = " is a file, not a folder" if existing == out else where
        raise OutputError(f"output folder {out}{what}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".xslicq-probe-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(
            f"output folder {out} cannot be written: no new file can be made in {existing} "
            f"({err.strerror or err})"
        ) from None


def read_manifest(out: Path) -> dict:
    """The manifest separate left in ``out`` (``{}`` when there is none)."""
    path = out / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("no list of files")
    except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise OutputError(
            f"cannot read {path} ({err}): it is damaged or not separate's; move it away or "
            "choose another --out folder"
        ) from None
    return manifest


def plan_outputs(out: Path, names: list[str], force: bool) -> list[str]:
    """Check that ``names`` (file names) can be written in ``out``; return separate's own
    earlier files there that this run does not write again (``--force`` removes them).

    ``out``'s own files are those its manifest lists whose contents are unchanged. Any
    other file in the way is an :class:`OutputError` naming it, ``--force`` or not; a
    folder that is not empty needs ``force``."""
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return []
    manifest = read_manifest(out)
    ours = set()
    for name, digest in manifest.get("files", {}).items():
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
            continue  # only plain file names in this folder are separate's
        path = out / name
        if path.is_file() and not path.is_symlink() and digest in (None, _sha256(path)):
            ours.add(name)  # None: written by a run that stopped before recording its hash
    foreign = [n for n in present if n not in ours and n != MANIFEST]
    clash = [n for n in names if n in foreign]
    if clash:
        raise OutputError(
            f"output folder {out} holds files that separate did not write (or that changed "
            f"since), which it would overwrite: {', '.join(clash)}; choose another --out "
            "folder (--force replaces only separate's own earlier stems)"
        )
    if not force:
        if ours:
            earlier = Path(str(manifest.get("input", "an earlier song"))).name
            raise OutputError(
                f"output folder {out} exists and is not empty; use --force to replace the "
                f"stems of {earlier} that separate wrote there"
            )
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(
            f"output folder {out} exists and is not empty (it holds {shown}); use --force to "
            "write the stems beside these files, or choose an empty folder"
        )
    return sorted(ours - set(names))


def _write_manifest(out: Path, record: dict) -> None:
    handle, tmp = temporary_file(out, ".xslicq-", ".json")
    with os.fdopen(handle, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, out / MANIFEST)


def write_outputs(out: Path, stems, rate: int, stale: list[str], source: dict) -> None:
    """Write ``stems`` as ``<name>.wav`` (float) into ``out``, remove ``stale`` (separate's
    own earlier files) and record them all in the manifest. ``stems`` is one
    ``{name: (channels, samples)}`` dict or an iterable of such dicts, consecutive stretches
    of the stems written as they come (so no whole stem need be held). Each WAV is written
    to a temporary file and renamed; the manifest lists a file before it is written, so a
    run that stops midway leaves no file that a later ``--force`` would refuse to replace.
    Every file gets the mode of any new file (0666 less the umask), as the stream's."""
    spans = iter([stems] if isinstance(stems, dict) else stems)
    first = next(spans)
    out.mkdir(parents=True, exist_ok=True)
    before = read_manifest(out).get("files", {})
    files = {n: before.get(n) for n in stale}
    files.update({f"{name}.wav": None for name in first})
    _write_manifest(out, {"version": 1, **source, "files": files})
    tmps, writers = {}, {}
    try:
        for name, stem in first.items():
            handle, tmps[name] = temporary_file(out, f".{name}-", ".wav.partial")
            os.close(handle)
            writers[name] = sf.SoundFile(
                tmps[name], "w", rate, stem.shape[0], subtype="FLOAT", format="WAV"
            )
        for span in itertools.chain([first], spans):
            for name, stem in span.items():
                try:
                    writers[name].write(stem.T)
                except RuntimeError as err:  # libsndfile's: a full disk, a file size limit
                    raise OutputError(f"cannot write {out / name}.wav: {err}") from None
        for name, tmp in tmps.items():
            writers.pop(name).close()
            os.replace(tmp, out / f"{name}.wav")
            files[f"{name}.wav"] = _sha256(out / f"{name}.wav")
    finally:
        for writer in writers.values():
            writer.close()
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
    for name in stale:
        (out / name).unlink(missing_ok=True)
        del files[name]
    _write_manifest(out, {"version": 1, **source, "files": files})


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
    OSError naming it."""
    if out is None:
        raise ValueError("no output folder given (--out)")
    out = Path(out)
    if model is None and checkpoint is not None:
        from .config import check_device

        check_device(device, "--device")
    if isinstance(chunk_seconds, bool) or not math.isfinite(chunk_seconds) or chunk_seconds <= 0:
        raise ValueError(f"--chunk-seconds must be a finite number > 0, got {chunk_seconds}")
    if wiener is not None and wiener < 0:
        raise ValueError(f"--wiener must be >= 0, got {wiener}")
    check_output_folder(out)
    waveform, rate = load_audio(audio)
    separator = load_separator(checkpoint, model, device, chunk_seconds)
    names = list(separator.targets)
    if accompaniment and "vocals" in names:
        names.append("accompaniment")
    stale = plan_outputs(out, [f"{n}.wav" for n in names], force)
    if wiener is not None:
        separator.wiener_iterations = wiener
    # both engines: the stems a chunk at a time, written as they come (no whole stem held)
    spans = separator.separate_spans(waveform, rate, progress=progress, any_rate=any_rate)
    if "accompaniment" in names:
        spans = _with_accompaniment(spans)
    source = {"input": str(Path(audio).resolve())}
    if model is not None:
        source["model"] = str(Path(model).resolve())
    else:
        source["checkpoint"] = str(Path(checkpoint).resolve())
    write_outputs(out, spans, rate, stale, source)
    return [out / f"{n}.wav" for n in names]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xslicq.separate", description=__doc__.splitlines()[0]
    )
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
        help="chunk length: memory grows with it (default 10 s)",
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
            print(
                "error: --checkpoint needs the training stack, and torch is not installed: "
                "pip install 'xslicq[train]', or separate with an exported --model model.onnx",
                file=sys.stderr,
            )
            return 1
        out_of_memory = (torch.cuda.OutOfMemoryError,)
    try:
        written = separate_file(
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
        print(
            f"error: out of GPU memory on {args.device}; lower --chunk-seconds "
            f"(now {args.chunk_seconds:g}) or use --device cpu",
            file=sys.stderr,
        )
        return 1
    except (ValueError, OSError, ImportError) as err:  # CheckpointError, ModelFileError,
        # DeviceError, ... are ValueErrors; ImportError: onnxruntime missing for --model
        print(error_line(err), file=sys.stderr)
        return 1
    print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
