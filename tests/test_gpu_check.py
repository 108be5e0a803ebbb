"""experiments/gpu_check.py: without a GPU it exits 0 and says why every check did not run;
with one, every check passes its tolerance."""

import subprocess
import sys

import pytest

from helpers import ROOT, requires_cuda

SCRIPT = ROOT / "experiments" / "gpu_check.py"
SECTIONS = ("## 1. sliCQT", "## 2. Training steps", "## 3. Loaders")


def run_script(out):
    """Run the script with ``--out out`` (a folder: it writes out/gpu.md)."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def sections(report: str) -> dict:
    parts = {}
    for title in SECTIONS:
        assert title in report, title
        body = report.split(title, 1)[1]
        parts[title] = body.split("\n## ", 1)[0]
    return parts


def test_without_gpu_every_check_says_not_run_and_why(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here: the checks run (test_on_gpu_every_check_passes)")
    bridge = "## CuPy bridge vs torch-CUDA training step\n\nbench_bridge.py's section\n"
    (tmp_path / "gpu.md").write_text("# an older report\n\n## 1. sliCQT\n\nold\n\n" + bridge)
    proc = run_script(tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "gpu.md").read_text()
    # the run's own header and sections replace the old ones; bench_bridge's section stays
    assert report.startswith("# GPU check:") and "older report" not in report
    assert report.endswith("\n" + bridge) and report.count("## 1. sliCQT") == 1
    assert report.splitlines()[2].startswith("Machine load during the run: 1-minute load")
    assert "**Not run on a GPU**" in report
    for key in (
        "| machine |",
        "| gpu | none (torch.cuda.is_available() is False) |",
        "| torch |",
        "| torch CUDA |",
        "| cupy |",
        "| nvidia-dali |",
    ):
        assert key in report, key
    for title, body in sections(report).items():
        assert (
            "not run: no CUDA GPU on this machine (torch.cuda.is_available() is False)" in body
        ), title
        assert "pass" not in body and "FAIL" not in body, title


@requires_cuda
@pytest.mark.gpu
@pytest.mark.slow
def test_on_gpu_every_check_passes(tmp_path):
    proc = run_script(tmp_path)
    report = (tmp_path / "gpu.md").read_text()
    assert proc.returncode == 0, report + proc.stderr[-3000:]
    assert "FAIL" not in report and "DOES NOT FALL" not in report
    parts = sections(report)
    assert parts["## 1. sliCQT"].count("| pass |") >= 4  # 2 scales x 2 precisions, torch CUDA
    assert "| every loss finite | yes |" in parts["## 2. Training steps"]
    assert "(falls)" in parts["## 2. Training steps"]
    assert "channels_last" in parts["## 2. Training steps"]
    assert "| default (PyTorch DataLoader" in parts["## 3. Loaders"]
