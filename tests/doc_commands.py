"""The commands and snippets of README.md and docs/*.md, and how the suite runs them.

Imported as ``import doc_commands`` (tests/ is on ``sys.path`` under pytest, as for
helpers.py). ``tests/test_docs.py`` enumerates every documented command and runs it as a
researcher types it, with small-data overrides *appended* (never by editing the text).

What counts as documented:

- every command of a fenced ``bash`` block (comments dropped, ``\\`` continuations
  joined), and every fenced ``python`` block as a whole;
- every inline code span in the prose that starts with a command word and has arguments
  (```python -m xslicq.train resume=<run folder>```), unless a fenced command starts with it.

A fenced block that cannot run on these machines carries a marker on the line before it,
``<!-- not run: REASON -->``; its commands are listed with the reason and not run. A
command anywhere else (an indented code block, a fenced block without a language) is an
error: the enumeration test fails and names the line.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from helpers import BENCH_TINY

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# what a documented command starts with
COMMAND = re.compile(
    r"^(python3? |\.venv/bin/\S+|make |pip |xslicq-\w+|docker |tensorboard |optuna-dashboard |"
    r"bash |scripts/|sox |ffmpeg |git |ruff |pytest )"
)
MARKER = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
INLINE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Snippet:
    """One documented command (``kind`` "shell") or Python block ("python")."""

    doc: str  # path relative to the repository, e.g. "docs/training.md"
    line: int  # 1-based line of the command (its first line)
    kind: str  # "shell" or "python"
    text: str  # the command as documented (continuations joined) or the Python source
    reason: str | None = None  # the block's `not run` marker
    inline: bool = False  # found in the prose, not in a fenced block

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def _strip_comment(line: str) -> str:
    """``line`` without a shell comment (``#`` at the start or after a blank, outside
    quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def shell_commands(lines: list[str], first_line: int) -> list[tuple[int, str]]:
    """The commands of a shell block: ``(line number, command)`` with continuations joined."""
    out, buf, start = [], [], None
    for k, raw in enumerate(lines):
        text = _strip_comment(raw)
        if not text.strip() and not buf:
            continue
        if start is None:
            start = first_line + k
        if text.endswith("\\"):
            buf.append(text[:-1].strip())
            continue
        buf.append(text.strip())
        command = " ".join(p for p in buf if p)
        if command:
            out.append((start, command))
        buf, start = [], None
    if buf:
        out.append((start, " ".join(buf)))
    return out


def normalize(command: str) -> str:
    """A command compared by what it runs: ``.venv/bin/python`` and ``python`` are one."""
    command = re.sub(r"^\.venv/bin/", "", command.strip())
    return " ".join(command.split())


# commands that are the test suite itself: the suite cannot run them from inside
NOT_RUN = {
    "make test": "the whole test suite, this one included (CI runs it: .ci/run)",
    "make test-fast": "the fast tests, this suite included",
    'pytest -m "not slow"': "the fast tests, this suite included",
}


class DocError(ValueError):
    """A command that the suite can neither run nor find a marker for."""


def parse(path: Path) -> tuple[list[Snippet], list[str]]:
    """The snippets of one Markdown file, and the problems found (unrunnable places)."""
    rel = str(path.relative_to(ROOT))
    lines = path.read_text().splitlines()
    snippets: list[Snippet] = []
    problems: list[str] = []
    inline: list[Snippet] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            prev_blank = i == 0 or not lines[i - 1].strip()
            if prev_blank and re.match(r"^ {4,}\S", lines[i]) and COMMAND.match(lines[i].strip()):
                problems.append(f"{rel}:{i + 1}: a command in an indented block; use ```bash")
            for span in INLINE.findall(lines[i]):
                span = span.strip()
                if COMMAND.match(span + " ") and " " in span:
                    inline.append(Snippet(rel, i + 1, "shell", span, inline=True))
            i += 1
            continue
        lang, start = match.group(2).lower(), i + 1
        end = start
        while end < len(lines) and not FENCE.match(lines[end]):
            end += 1
        body = lines[start:end]
        above = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = MARKER.search(above)
        reason = marker.group(1) if marker else None
        if lang in SHELL:
            for line, command in shell_commands(body, start + 1):
                snippets.append(Snippet(rel, line, "shell", command, reason))
        elif lang == "python":
            snippets.append(Snippet(rel, start + 1, "python", "\n".join(body), reason))
        else:
            for k, text in enumerate(body):
                if COMMAND.match(text.strip() + " ") and " " in text.strip():
                    problems.append(
                        f"{rel}:{start + k + 1}: a command in a ```{lang or ''} block: "
                        "use ```bash (or ```python)"
                    )
        i = end + 1
    return snippets + inline, problems


def documented() -> tuple[list[Snippet], list[str]]:
    """Every snippet of README.md and docs/*.md to run or list, and the problems found.

    Inline commands that a fenced command starts with are covered by it and left out, as
    are repeats of a command already listed (the first place it appears is the one run)."""
    found, problems = [], []
    for path in DOCS:
        snippets, issues = parse(path)
        found += snippets
        problems += issues
    fenced = [normalize(s.text) for s in found if not s.inline]
    out, seen = [], set()
    for s in found:
        key = (s.kind, normalize(s.text))
        if key in seen:
            continue
        if s.inline and any(f.startswith(key[1]) for f in fenced):
            continue
        seen.add(key)
        if key[1] in NOT_RUN and s.reason is None:
            s = Snippet(s.doc, s.line, s.kind, s.text, NOT_RUN[key[1]], s.inline)
        out.append(s)
    return out, problems


# ------------------------------------------------------------------ running a command
PLACEHOLDER = re.compile(r"<[A-Za-z][\w .-]*>")
DATASET_PATHS = ("/data/MUSDB18-HQ", "/path/MUSDB18-HQ")


def _newest(folder: Path, multirun: bool = False) -> Path:
    runs = [
        p
        for p in folder.glob("*")
        if p.is_dir() and (p / ".hydra").is_dir() == (not multirun) and p.name != "multirun"
    ]
    if multirun:
        runs = [p for p in (folder / "multirun").glob("*") if p.is_dir()]
    if not runs:
        kind = "multirun" if multirun else "run"
        raise DocError(f"no {kind} folder under {folder} yet: a training command comes first")
    return max(runs, key=lambda p: p.stat().st_mtime)


def substitute(command: str, lab: Path, dataset: Path) -> str:
    """The documented command with its placeholders given real values: the lab's dataset
    for the MUSDB18-HQ paths, the newest training run's name for ``<run>`` (documented as
    ``outputs/train/<run>``) and its folder for ``<run folder>``, the newest sweep's folder
    for ``<sweep folder>``: the folders that training itself created."""
    for path in DATASET_PATHS:
        command = command.replace(path, str(dataset))
    train = lab / "outputs" / "train"

    def value(match):
        name = match.group(0)[1:-1]
        if name == "run":  # documented as outputs/train/<run>
            return _newest(train).name
        if name == "run folder":
            return str(_newest(train).relative_to(lab))
        if name == "sweep folder":
            return str(_newest(train, multirun=True).relative_to(lab))
        raise DocError(f"unknown placeholder {match.group(0)} in {command!r}")

    return PLACEHOLDER.sub(value, command)


# small-data overrides appended to each entry point's documented command
def _has(command: str, key: str) -> bool:
    return re.search(rf"(^|\s){re.escape(key)}", command) is not None


def small(command: str) -> str:
    """``command`` with the overrides that make it run in seconds appended (Hydra takes the
    last value of a key, argparse the last option). Documented choices (``data=``,
    ``transform=``...) are kept: only sizes are appended."""
    words = shlex.split(command)
    module = next((w for w in words if w.startswith("xslicq.")), None)
    script = next((w for w in words if w.startswith("experiments/")), None)
    extra: list[str] = []
    if module in ("xslicq.train", "xslicq.quickstart") or _script(words) == "xslicq-train":
        if _has(command, "resume="):
            extra = ["trainer.max_epochs=2"] if _has(command, "trainer.max_epochs=") else []
        elif _has(command, "trainer="):  # debug=default would replace the documented trainer
            extra = [] if _has(command, "data=") else ["data=synthetic_tiny"]
            extra += [*TINY_DATA, *TINY_TRAINER]
            if _has(command, "trainer.devices="):  # a batch of 2 for each process
                extra.append("data.samples_per_track=4")
        else:
            extra = ["debug=default"]
        if _has(command, "hparams_search="):
            extra.append("hydra.sweeper.n_trials=2")
    elif module == "xslicq.oracle" or _script(words) == "xslicq-oracle":
        if not _has(command, "data="):
            extra.append("data=synthetic_tiny")
        extra.append("workers=0")
        if _has(command, "hparams_search="):
            extra.append("hydra.sweeper.n_trials=2")
    elif module in ("xslicq.evaluate",) or _script(words) == "xslicq-evaluate":
        if not _has(command, "data="):
            extra.append("data=synthetic_tiny")
        extra.append("workers=0")
    elif module == "xslicq.cadenza" or _script(words) == "xslicq-cadenza":
        if not _has(command, "data="):
            extra.append("data=synthetic_tiny")
        extra += ["seconds=1.5", "workers=0"]
    elif module == "xslicq.data.synthetic":
        extra += ["--tracks", "4", "--valid-tracks", "1", "--test-tracks", "1", "--seconds", "4"]
        extra.append("--no-progress")
    elif module == "xslicq.transform_demo":
        extra.append("seconds=2.0")
    elif words[:2] == ["make", "demo"]:
        return f'{command} ARGS="debug=default"'
    elif script in SCRIPT_ARGS:
        extra += SCRIPT_ARGS[script]
    if not extra:
        return command
    return " ".join([command, *(shlex.quote(e) for e in extra)])


# the sizes of debug=default (conf/debug/default.yaml), for commands that choose a trainer
TINY_DATA = (
    "data.seq_dur=2.0",
    "data.samples_per_track=2",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.val_seq_dur=2.0",
    "log_media=false",
)
TINY_TRAINER = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
)


def _script(words: list[str]) -> str | None:
    return Path(words[0]).name if words else None


# experiments/ scripts: the arguments that make them finish in seconds (their output goes
# to the default output folder, outside the tracked tree)
SCRIPT_ARGS: dict[str, list[str]] = {
    **{f"experiments/{name}": args for name, args in BENCH_TINY.items()},
    "experiments/transform_search.py": ["--trials", "2", "--workers", "1"]
    + ["--museval-workers", "1", "data=synthetic_tiny"],
}

SERVERS = ("tensorboard", "optuna-dashboard")


def is_server(command: str) -> bool:
    """Whether ``command`` starts a server that runs until stopped (``serve`` runs it)."""
    return Path(command.split()[0]).name in SERVERS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(command: str, cwd: Path, env: dict, timeout: float = 90.0) -> str:
    """Start a documented server command on a free port, wait until it answers HTTP 200 on
    ``/``, stop it; returns what it printed. Raises AssertionError if it never answers."""
    port = _free_port()
    proc = subprocess.Popen(
        f"{command} --port {port}",
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline, status = time.monotonic() + timeout, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        output = proc.communicate(timeout=30)[0]
    assert status == 200, f"{command} did not answer on port {port}:\n{output[-3000:]}"
    return output


def environment(data_cache: Path) -> dict:
    """The environment of a documented command: the project's venv first on PATH (so
    ``python`` and the console scripts are its own), the shared synthetic data cache."""
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["XSLICQ_DATA"] = str(data_cache)
    env.pop("XSLICQ_ROOT", None)
    return env


# what a lab (the folder a documented command runs in) links from the repository
LINKED = (".venv", ".setup-stamp", "Makefile", "scripts", "pyproject.toml", "constraints.txt")


def make_lab(folder: Path, assets: Path) -> Path:
    """A working folder like a fresh clone's root, as a researcher runs the docs from: the
    repository's venv, Makefile and scripts linked in, the example inputs the docs name
    (song.wav, song.mp3, model.ckpt, listeners.json) copied from ``assets``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if (ROOT / name).exists() and not (folder / name).exists():
            (folder / name).symlink_to(ROOT / name)
    experiments = folder / "experiments"
    if not experiments.exists():
        experiments.mkdir()
        for script in (ROOT / "experiments").glob("*.py"):
            (experiments / script.name).symlink_to(script)
    for item in assets.iterdir():  # copies: a command may replace or delete its inputs
        if item.is_file() and not (folder / item.name).exists():
            shutil.copy(item, folder / item.name)
    return folder


def run(snippet: Snippet, lab: Path, dataset: Path, env: dict, timeout: float = 900) -> str:
    """Run a documented snippet in ``lab``; returns its output, raises AssertionError with
    the output when it fails."""
    if snippet.kind == "python":
        proc = subprocess.run(
            [sys.executable, "-c", snippet.text],
            cwd=lab,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        shown = snippet.text
    else:
        command = small(substitute(snippet.text, lab, dataset))
        if is_server(command):
            return serve(command, lab, env)
        shown = command
        proc = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=lab,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f"{snippet.id} exited with {proc.returncode}:\n$ {shown}\n{output[-4000:]}"
    )
    return output


def which(tool: str) -> bool:
    return shutil.which(tool) is not None
