"""The documentation is executed: every command and Python snippet of README.md and
docs/*.md runs here as written (small-data overrides appended, see doc_commands.small), or
its block carries a ``<!-- not run: REASON -->`` marker. A new command with neither fails
``test_every_documented_command_runs_or_is_marked``."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import doc_commands as dc
from helpers import CONF, needs_fluidsynth

SNIPPETS, PROBLEMS = dc.documented()
RUN = [s for s in SNIPPETS if s.reason is None]
MARKED = [s for s in SNIPPETS if s.reason is not None]


# ----------------------------------------------------------------- the enumeration
def test_every_documented_command_runs_or_is_marked():
    assert not PROBLEMS, "\n".join(PROBLEMS)
    assert len(RUN) >= 40, f"only {len(RUN)} documented commands found: is the parser broken?"
    for snippet in MARKED:
        assert len(snippet.reason) > 10, f"{snippet.id}: say why it cannot run here"


def test_parser_known_answers(tmp_path, monkeypatch):
    doc = tmp_path / "x.md"
    doc.write_text(
        "Prose with `python -m xslicq.train resume=<run folder>` and `python:3.11-slim`.\n"
        "\n"
        "```bash\n"
        "# a comment\n"
        "python -m xslicq.train transform=cqlog \\\n"
        "    loss=sdr_mix   # trailing comment\n"
        "make demo\n"
        "```\n"
        "<!-- not run: needs a CUDA GPU here -->\n"
        "```bash\n"
        "python -m xslicq.train trainer=gpu\n"
        "```\n"
        "```python\n"
        "x = 1  # python\n"
        "```\n"
        "```\n"
        "python -m xslicq.separate song.wav --out a\n"
        "```\n"
        "\n"
        "    make test\n"
    )
    monkeypatch.setattr(dc, "ROOT", tmp_path)
    snippets, problems = dc.parse(doc)
    shell = [(s.line, s.text, s.reason, s.inline) for s in snippets if s.kind == "shell"]
    assert shell == [
        (5, "python -m xslicq.train transform=cqlog loss=sdr_mix", None, False),
        (7, "make demo", None, False),
        (11, "python -m xslicq.train trainer=gpu", "needs a CUDA GPU here", False),
        (1, "python -m xslicq.train resume=<run folder>", None, True),
    ]
    assert [s.text for s in snippets if s.kind == "python"] == ["x = 1  # python"]
    assert problems == [
        "x.md:17: a command in a ``` block: use ```bash (or ```python)",
        "x.md:20: a command in an indented block; use ```bash",
    ]


def test_small_overrides_are_appended_not_edited():
    cmd = "python -m xslicq.train data=musdb data.root=/x transform=bark"
    assert dc.small(cmd) == cmd + " debug=default"
    sweep = "python -m xslicq.train -m hparams_search=train_optuna"
    assert dc.small(sweep) == sweep + " debug=default hydra.sweeper.n_trials=2"
    resume = "python -m xslicq.train resume=outputs/train/r trainer.max_epochs=500"
    assert dc.small(resume) == resume + " trainer.max_epochs=2"
    assert (
        dc.small("python -m xslicq.separate a.wav --out s")
        == "python -m xslicq.separate a.wav --out s"
    )


def test_placeholders_are_the_folders_training_made(tmp_path):
    lab = tmp_path
    old, new = lab / "outputs/train/old", lab / "outputs/train/new"
    for run in (old, new):
        (run / ".hydra").mkdir(parents=True)
    os.utime(old, (1, 1))
    cmd = dc.substitute("python -m xslicq.train resume=outputs/train/<run>", lab, Path("/d"))
    assert cmd == "python -m xslicq.train resume=outputs/train/new"
    assert dc.substitute("resume=<run folder>", lab, Path("/d")) == "resume=outputs/train/new"
    assert dc.substitute("x data.root=/data/MUSDB18-HQ", lab, Path("/d")) == "x data.root=/d"
    with pytest.raises(dc.DocError, match="unknown placeholder <song>"):
        dc.substitute("x <song>", lab, Path("/d"))


@pytest.mark.parametrize(
    "group", ["experiment", "trainer", "hydra/launcher", "hparams_search", "transform"]
)
def test_every_option_of_the_run_groups_is_documented(group):
    """Each option of these groups appears as ``group=option`` in a documented command, so
    the docs runner runs it (or its marker says why not)."""
    chosen = set()
    for snippet in SNIPPETS:
        if snippet.kind == "shell":
            for values in re.findall(rf"(?:^|\s){re.escape(group)}=(\S+)", snippet.text):
                chosen.update(values.split(","))
    options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    missing = [o for o in options if o not in chosen]
    assert not missing, f"{group} options without a documented command: {missing}"


# ------------------------------------------------------------------------ running
@pytest.fixture(scope="session")
def doc_assets():
    """What the documented commands take as input, made once: song.wav (6 s stereo),
    song.mp3, a trained checkpoint model.ckpt (the default config, two batches),
    listeners.json; a MUSDB18-HQ-layout folder rendered by the synthetic generator; a
    shared synthetic data cache. (model.onnx is what the documented export writes.)

    In a folder of /tmp that other users can pass through (pytest's own is closed to them):
    the documented PostgreSQL server runs as the ``postgres`` user when the tests run as
    root."""
    from xslicq.signals import music_like

    base = Path(tempfile.mkdtemp(prefix="xslicq-docs-"))
    base.chmod(0o755)
    assets, cache = base / "assets", base / "data_cache"
    assets.mkdir()
    env = dc.environment(cache)
    sf.write(assets / "song.wav", music_like(6.0).T.astype(np.float32), 44100, subtype="FLOAT")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", "song.wav", "song.mp3"], cwd=assets, check=True
    )
    shutil.copy(
        dc.ROOT / "xslicq" / "data" / "listeners" / "examples.json", assets / "listeners.json"
    )
    work = base / "model"
    work.mkdir()

    def python(*args, cwd):
        proc = subprocess.run(
            [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    python("-m", "xslicq.train", "debug=default", cwd=work)
    last = next((work / "outputs" / "train").glob("*/checkpoints/last.ckpt"))
    shutil.copy(last, assets / "model.ckpt")
    dataset = base / "MUSDB18-HQ"
    python(
        "-m", "xslicq.data.synthetic", "--out", str(dataset), "--tracks", "4",
        "--valid-tracks", "1", "--seconds", "4", "--no-progress", cwd=base,
    )  # fmt: skip
    yield {"assets": assets, "dataset": dataset, "env": env, "base": base}
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def labs(doc_assets):
    """One working folder per document: its commands run in order and later ones use the
    runs that earlier ones made (``<run>``)."""
    made = {}

    def lab(doc: str) -> Path:
        if doc not in made:
            folder = doc_assets["base"] / "labs" / doc.replace("/", "_")
            made[doc] = dc.make_lab(folder, doc_assets["assets"])
        return made[doc]

    yield lab
    from xslicq import postgres

    for folder in made.values():  # a documented server left running by a failed command
        server = folder / "outputs" / "postgres"
        if server.is_dir() and postgres.running(server):
            postgres.stop(server)


@pytest.mark.slow
@needs_fluidsynth
@pytest.mark.parametrize("snippet", RUN, ids=[s.id for s in RUN])
def test_documented_command(snippet, labs, doc_assets):
    dc.run(snippet, labs(snippet.doc), doc_assets["dataset"], doc_assets["env"])


def test_servers_are_recognised_whatever_the_path():
    """``.venv/bin/tensorboard`` is served (started, asked for a page, stopped), not run."""
    assert dc.is_server(".venv/bin/tensorboard --logdir outputs/train")
    assert dc.is_server("optuna-dashboard sqlite:///outputs/optuna.sqlite")
    assert not dc.is_server("python -m xslicq.train")
