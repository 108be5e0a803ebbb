"""Hydra composition of every transform option and the demo CLI (the notebooks run in
test_notebooks.py)."""

import pytest
import torch
from hydra.utils import instantiate

from xslicq.transform import STFT, SliCQT

from helpers import CONF, compose_config, run_module

TRANSFORMS = sorted(p.stem for p in (CONF / "transform").glob("*.yaml"))


def compose_demo(overrides=()):
    return compose_config("transform_demo", overrides)


def test_every_scale_has_a_config():
    assert set(TRANSFORMS) >= {"cqlog", "oct", "mel", "bark", "vqlog"}


def test_default_transform_is_cqlog():
    assert compose_demo().transform.scale == "cqlog"


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transform_config_instantiates_and_inverts(name):
    cfg = compose_demo([f"transform={name}"])
    t = instantiate(cfg.transform)
    scale = "vqlog" if name == "tuned" else name  # the search chose a vqlog
    assert t.scale_name == scale and isinstance(t, STFT if name == "stft" else SliCQT)
    x = torch.randn(1, 2, 5000, dtype=torch.float64)
    assert float((x - t.inverse(t(x), 5000)).norm() / x.norm()) < 1e-12


def test_overrides_reach_the_transform():
    cfg = compose_demo(["transform=mel", "transform.bins=64", "transform.sllen=16384"])
    t = instantiate(cfg.transform)
    assert t.bins == 64 and t.sllen == 16384 and t.trlen == 4096


def test_bad_override_is_a_clear_error():
    cfg = compose_demo(["transform.fmax=30000"])
    with pytest.raises(Exception, match="fmax=30000 Hz is above the Nyquist frequency 22050.0 Hz"):
        instantiate(cfg.transform)


def test_demo_cli(tmp_path):
    r = run_module(
        "xslicq.transform_demo",
        "transform=bark",
        "seconds=2",
        "dtype=float64",
        f"hydra.run.dir={tmp_path}",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "relative error" in r.stdout
    err = float(r.stdout.split("relative error ")[1].split()[0])
    assert err < 1e-12
    png = tmp_path / "spectrogram.png"
    assert png.exists() and png.stat().st_size > 10_000


def test_demo_rejects_bad_seconds(tmp_path):
    r = run_module("xslicq.transform_demo", "seconds=0", f"hydra.run.dir={tmp_path}", timeout=300)
    assert r.returncode == 2 and "error: seconds must be positive and at most 120" in r.stderr
    assert "Traceback" not in r.stderr
