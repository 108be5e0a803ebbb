"""The benchmark scripts of experiments/ (the Makefile's `make bench` and `make record`):
they write into ``--out`` (default outputs/experiments/, ignored by git) and only with
``--record`` into the record, experiments/results/; every results file states the load
average of its run (experiments/benchutil.py)."""

import argparse
import importlib.util
import json
import re
import subprocess
import sys

import pytest

from helpers import BENCH_TINY, ROOT

EXPERIMENTS = ROOT / "experiments"
# experiments/benchutil.py, imported as the scripts import it (their folder is not a package)
_spec = importlib.util.spec_from_file_location("benchutil", EXPERIMENTS / "benchutil.py")
benchutil = sys.modules.setdefault("benchutil", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(benchutil)

# what each of them writes
WRITES = {
    "bench_transform.py": ["transform.md", "transform.json"],
    "bench_matrix.py": ["matrix.md"],
    "bench_training.py": ["training.md"],
    "bench_data.py": ["data.md"],
}
# the record, and the tracked files a script could write besides (make_figures: docs/, the
# transform search: conf/transform/tuned.yaml)
TRACKED = ["experiments/results", "docs", "conf/transform"]


def make_dry_run(*targets) -> list[str]:
    """The benchmark command lines ``make -n <targets>`` would run, in order."""
    out = subprocess.run(
        ["make", "-n", *targets], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [line.split() for line in out.splitlines() if "experiments/" in line]


def git_status(*paths) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_make_bench_writes_outside_the_record_and_make_record_into_it():
    bench, record = make_dry_run("bench"), make_dry_run("record")
    assert [c[1] for c in bench] == [f"experiments/{name}" for name in BENCH_TINY]
    assert all(c[2:] == ["--out", "outputs/experiments"] for c in bench), bench
    assert [c[1] for c in record] == [c[1] for c in bench]
    assert all(c[2:] == ["--record"] for c in record), record
    assert make_dry_run("bench", "RECORD=1") == record


def test_make_test_lints_first():
    out = subprocess.run(
        ["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    commands = [line for line in out.splitlines() if line.startswith(".venv/bin/")]
    assert commands[-3:] == [
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/python -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make lint" not in ci  # lint runs once, inside make test


def test_default_output_folder_is_ignored_by_git():
    assert benchutil.DEFAULT_OUT == ROOT / "outputs" / "experiments"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "outputs/experiments/transform.md"], cwd=ROOT
    )
    assert ignored.returncode == 0


def parse(argv, **kwargs):
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    return benchutil.parse_args(parser, argv, **kwargs)


def test_out_and_record_choose_the_folder(tmp_path):
    assert parse([]).out == benchutil.DEFAULT_OUT
    assert parse(["--out", str(tmp_path)]).out == tmp_path
    assert parse(["--record"]).out == benchutil.RESULTS
    assert parse(["--record"], record=tmp_path / "docs").out == tmp_path / "docs"
    with pytest.raises(SystemExit):  # one or the other
        parse(["--record", "--out", str(tmp_path)])


def test_the_named_command_leaves_out_where_the_results_went():
    assert benchutil.measured_args(["--seconds", "2", "--out", "/tmp/x", "--threads", "1"]) == [
        "--seconds",
        "2",
        "--threads",
        "1",
    ]
    assert benchutil.measured_args(["--record", "--repeats", "3", "--out=/x"]) == [
        "--repeats",
        "3",
    ]


@pytest.fixture
def load(monkeypatch):
    """``load["now"]`` is the 1-minute load average os.getloadavg gives; 2 cores."""
    load = {"now": 1.5}
    monkeypatch.setattr(benchutil.os, "getloadavg", lambda: (load["now"], 1.0, 0.5))
    monkeypatch.setattr(benchutil.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(benchutil, "_run", benchutil._run)  # restored afterwards
    return load


LOAD = (
    "Machine load during the run: 1-minute load average 1.50 at the start and 3.25 at the "
    "end of the run (0.0 minutes), on 2 cores, 2 threads per measurement. The run's own "
    "threads account for about 2 of the load; a load above that share means other work "
    "shared the cores and inflated the times (they are then upper bounds)."
)


def test_results_files_state_the_load_average(load, tmp_path):
    parse(["--out", str(tmp_path / "out")], threads=None)  # threads: the largest of --threads
    load["now"] = 3.25
    path = benchutil.write_results("x.md", ["# Title", "", "| a | 1 |", ""])
    assert path == tmp_path / "out" / "x.md"
    assert path.read_text() == "\n".join(["# Title", "", LOAD, "", "| a | 1 |", ""])
    data = json.loads(benchutil.write_json("x.json", {"rows": [1]}).read_text())
    assert data == {"rows": [1], "machine_load": LOAD}

    load["now"] = 1.5
    parse(["--out", str(tmp_path / "out")], threads=1)
    load["now"] = 3.25
    one = LOAD.replace("2 threads per", "1 thread per").replace("about 2", "about 1")
    assert benchutil.load_line() == one


def test_sections_keep_the_others_and_each_states_its_load(load, tmp_path):
    parse(["--out", str(tmp_path)])
    load["now"] = 3.25
    benchutil.write_section("training.md", "## Speed", "## Speed\n\nfast")
    benchutil.write_section("training.md", "## Overfit", "## Overfit\n\nlearns")
    benchutil.write_section("training.md", "## Speed", "## Speed\n\nfaster")
    assert (tmp_path / "training.md").read_text() == "\n".join(
        [
            benchutil.TITLES["training.md"],
            "",
            "## Speed",
            "",
            LOAD,
            "",
            "faster",
            "",
            "## Overfit",
            "",
            LOAD,
            "",
            "learns",
            "",
        ]
    )


def test_every_recorded_results_file_states_the_load():
    """The record itself: every Markdown results file, and in the files that several
    scripts write every part a script wrote (the ``## `` sections that say which script
    produced them), says what the machine's load was (or that it was not recorded)."""
    for path in sorted(benchutil.RESULTS.glob("*.md")):
        text = path.read_text()
        assert benchutil.LOAD_PREFIX in text, path.name
        if path.name in benchutil.TITLES:
            for section in text.split("\n## "):
                if "Produced by" in section or "Written by" in section:
                    assert benchutil.LOAD_PREFIX in section, f"{path.name}: {section[:60]!r}"


def test_every_script_takes_out_and_record():
    """No script of experiments/ parses its own arguments or writes into the record
    itself: all go through benchutil.parse_args and its writers."""
    scripts = sorted(p for p in EXPERIMENTS.glob("*.py") if p.name != "benchutil.py")
    assert len(scripts) >= 17
    for path in scripts:
        text = path.read_text()
        assert re.search(r"\bparse_args\(parser\b", text), path.name
        assert "parser.parse_args(" not in text, path.name  # argparse's own: no --out
        assert not re.search(r"RESULTS\s*=|\"results\"|savefig\(", text), path.name


@pytest.mark.slow
def test_make_bench_scripts_write_only_into_out(tmp_path):
    """Every script `make bench` runs, with BENCH_TINY arguments and ``--out``: the record and
    the docs stay as they are (git status), the folder gets every file with its load."""
    before = git_status(*TRACKED)
    out = tmp_path / "bench"
    for command in make_dry_run("bench"):
        script = command[1].split("/")[-1]
        proc = subprocess.run(
            [sys.executable, command[1], *BENCH_TINY[script], "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert git_status(*TRACKED) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(sum(WRITES.values(), []))
    for name in ("transform.md", "matrix.md", "data.md"):
        lines = (out / name).read_text().splitlines()
        assert lines[0].startswith("# ") and lines[2].startswith(benchutil.LOAD_PREFIX), name
    training = (out / "training.md").read_text().splitlines()
    assert training[2] == "## Training speed on the CPU"
    assert training[4].startswith(benchutil.LOAD_PREFIX)
    assert json.loads((out / "transform.json").read_text())["machine_load"].startswith(
        benchutil.LOAD_PREFIX
    )
    # bench_data compares the loader with the training rate bench_training just measured
    assert f"({out / 'training.md'}): the loader delivers" in (out / "data.md").read_text()
