"""The system's stages end to end: the test stage (scores of the best checkpoint, files next
to the run) and what validation logs to TensorBoard (media every N epochs on the global
step, a bounded labelled picture, the audio of every signal, finite scalars, the epoch's
training loss), read back from the event files."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xslicq.data import SOURCES
from xslicq.plotting import render_figure, separation_figure, slicq_image
from xslicq.system import MEDIA_PIXELS
from xslicq.train import ConfigError, train
from xslicq.transform import STFT

from helpers import SR, tiny_train_config

EPOCHS, EVERY, BATCHES = 2, 2, 2  # trainer=debug: two training batches per epoch


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sizes = {"images": 0, "audio": 0, "scalars": 0}
    return EventAccumulator(str(folder), size_guidance=sizes).Reload()


def pictures(acc):
    (tag,) = [t for t in acc.Tags()["images"] if "spectrograms" in t]
    return acc.Images(tag)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_musdb):
    """One tiny run of two epochs with media every second epoch, a sanity check, epochs
    shorter than log_every_n_steps, and the test stage (test_metric sdr, the default)."""
    out = tmp_path_factory.mktemp("stages")
    cfg = tiny_train_config(
        out,
        tiny_musdb,
        [
            f"trainer.max_epochs={EPOCHS}",
            f"log_media_every_n_epochs={EVERY}",
            "trainer.num_sanity_val_steps=1",
            "trainer.log_every_n_steps=50",
            "test=true",
        ],
    )
    metrics, objects = train(cfg)
    return SimpleNamespace(
        out=out, cfg=cfg, metrics=metrics, objects=objects, events=events(out / "tensorboard")
    )


def best_checkpoint(run):
    return run.objects["trainer"].checkpoint_callback.best_model_path


# ------------------------------------------------------------------------- test stage
def test_test_stage_equals_evaluating_the_best_checkpoint(run, tiny_musdb, tmp_path):
    from xslicq import Separator
    from xslicq.data.tracks import find_tracks
    from xslicq.evaluation import evaluate

    assert run.cfg.test_metric == "sdr"
    separator = Separator.from_checkpoint(best_checkpoint(run))
    tracks = find_tracks(tiny_musdb, "test", SR)
    direct = evaluate(separator.separate, tracks, tmp_path, metric="sdr", workers=0)
    assert direct["tracks"] == ["test_0"]
    for t in SOURCES:
        assert run.metrics[f"test/sdr_{t}"] == pytest.approx(
            direct["per_target"][t]["SDR"], abs=1e-4
        )
    assert run.metrics["test/sdr"] == pytest.approx(direct["mean"]["SDR"], abs=1e-4)
    assert not any(k.startswith(("test/sir", "test/sar")) for k in run.metrics)  # SDR only


def test_test_results_are_written_next_to_the_run(run):
    folder = run.out / "test"
    results = json.loads((folder / "results.json").read_text())
    assert results["checkpoint"] == best_checkpoint(run)
    assert results["metric"] == "sdr" and results["tracks"] == ["test_0"]
    for t in SOURCES:
        assert results["per_target"][t]["SDR"] == pytest.approx(
            run.metrics[f"test/sdr_{t}"], abs=1e-4
        )
    assert results["mean"]["SDR"] == pytest.approx(run.metrics["test/sdr"], abs=1e-4)
    assert f"**{results['mean']['SDR']:.2f}**" in (folder / "summary.md").read_text()
    assert (folder / "tracks.csv").read_text().count("test_0") == len(SOURCES)
    assert (folder / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_museval_test_metric_logs_sir_and_sar(run, tiny_musdb, tmp_path):
    """The test stage alone (train=false) on the run's best checkpoint: museval's SDR is the
    ``sdr`` metric's (the same quantity, see xslicq.evaluation.bsseval), plus SIR/SAR/ISR."""
    cfg = tiny_train_config(
        tmp_path,
        tiny_musdb,
        ["train=false", "test=true", "test_metric=museval", f"ckpt_path={best_checkpoint(run)}"],
    )
    metrics, _ = train(cfg)
    for t in SOURCES:
        assert metrics[f"test/sdr_{t}"] == pytest.approx(run.metrics[f"test/sdr_{t}"], abs=1e-4)
        for score in ("sir", "sar", "isr"):
            assert math.isfinite(metrics[f"test/{score}_{t}"])
    assert {"test/sir", "test/sar", "test/isr"} <= set(metrics)
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    assert results["scores"] == ["SDR", "SIR", "SAR", "ISR"]
    assert results["mean"]["SAR"] == pytest.approx(metrics["test/sar"], abs=1e-4)


@pytest.mark.parametrize(
    "override, match",
    [
        ("test_metric=bss", "test_metric must be one of museval, sdr, fast_bss_eval, got 'bss'"),
        ("log_media_every_n_epochs=0", "log_media_every_n_epochs must be an integer >= 1"),
        ("log_media_every_n_epochs=2.5", "log_media_every_n_epochs must be .* got 2.5"),
        ("log_media_every_n_epochs=true", "log_media_every_n_epochs must be .* got True"),
    ],
)
def test_bad_media_and_test_metric_values_stop_before_training(
    override, match, tmp_path, tiny_musdb
):
    with pytest.raises(ConfigError, match=match):
        train(tiny_train_config(tmp_path, tiny_musdb, [override]))
    assert not (tmp_path / "checkpoints").exists()


# ---------------------------------------------------------------------- TensorBoard
def test_media_every_n_epochs_on_the_global_step(run):
    assert run.objects["trainer"].global_step == EPOCHS * BATCHES
    # every second epoch from the first: epoch 0 only, at the global step after it (2)
    steps = [(epoch + 1) * BATCHES for epoch in range(EPOCHS) if epoch % EVERY == 0]
    assert steps == [2]
    acc = run.events
    assert [e.step for e in pictures(acc)] == steps
    for tag in acc.Tags()["audio"]:
        assert [e.step for e in acc.Audio(tag)] == steps, tag


def test_media_picture_is_bounded_and_audio_has_every_signal(run):
    acc = run.events
    for e in pictures(acc):
        assert 0 < e.width <= MEDIA_PIXELS and 0 < e.height <= MEDIA_PIXELS
    assert acc.Tags()["images"] == ["val/spectrograms"]
    expected = {"val_audio/mixture"} | {
        f"val_audio/{t}/{kind}" for t in SOURCES for kind in ("reference", "estimate")
    }
    assert set(acc.Tags()["audio"]) == expected
    for tag in expected:
        clip = acc.Audio(tag)[0]
        assert clip.sample_rate == SR and clip.length_frames == 2 * SR  # the 2 s val clip
    mixture = acc.Audio("val_audio/mixture")[0].encoded_audio_string
    reference = acc.Audio("val_audio/vocals/reference")[0].encoded_audio_string
    assert mixture != reference


def test_scalars_are_finite_and_sdr_best_skips_the_sanity_check(run):
    acc = run.events
    for tag in acc.Tags()["scalars"]:
        for e in acc.Scalars(tag):
            if tag == run.cfg.optimized_metric and e.step == 0 and math.isnan(e.value):
                continue  # train.py's hparams placeholder: test_optimized_metric_has_no_nan_point
            assert math.isfinite(e.value), (tag, e.step, e.value)
    sdr = [e.step for e in acc.Scalars("val/sdr")]
    best = [e for e in acc.Scalars("val/sdr_best") if not math.isnan(e.value)]
    assert len(sdr) == EPOCHS and [e.step for e in best] == sdr  # none for the sanity check
    values = [e.value for e in best]
    assert values == sorted(values)  # a running best


def test_optimized_metric_has_no_nan_point_and_is_the_hparams_column(run):
    values = [e.value for e in run.events.Scalars(run.cfg.optimized_metric)]
    assert values and all(math.isfinite(v) for v in values)
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = run.events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]
    ).experiment
    assert [m.name.tag for m in experiment.metric_infos] == [run.cfg.optimized_metric]
    assert "optimizer/lr" in {h.name for h in experiment.hparam_infos}


def test_train_loss_logged_every_epoch_in_short_epochs(run):
    acc = run.events
    assert "train/loss" not in acc.Tags()["scalars"]  # 2 batches an epoch, log_every_n_steps 50
    points = acc.Scalars("train/loss_epoch")
    assert len(points) == EPOCHS and all(math.isfinite(e.value) for e in points)
    assert math.isfinite(run.metrics["train/loss_epoch"])


# -------------------------------------------------------------------------- pictures
@pytest.mark.parametrize("rows, bins, columns", [(4, 2049, 1000), (1, 40, 8), (4, 262, 320)])
def test_separation_figure_is_labelled_and_bounded_whatever_the_size(rows, bins, columns):
    rng = np.random.default_rng(0)
    targets = SOURCES[:rows]
    images = [[rng.uniform(-90, 0, (bins, columns)) for _ in range(3)] for _ in targets]
    freqs = np.linspace(0.0, SR / 2, bins)
    fig = separation_figure(images, targets, freqs=freqs, seconds=2.0, max_pixels=512)
    axes = np.array(fig.axes).reshape(rows, 3)
    assert [ax.get_title() for ax in axes[0]] == ["mixture", "reference", "estimate"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == list(targets)
    assert all(ax.get_xlabel() == "time (s)" for ax in axes[-1])
    rgb = render_figure(fig)
    assert rgb.dtype == np.uint8 and rgb.shape[0] == 3
    assert rgb.shape[1] <= 512 and rgb.shape[2] <= 512


def test_separation_figure_names_mismatched_shapes():
    image = np.zeros((4, 4))
    with pytest.raises(ValueError, match="images must be 2 rows .* of 3 images"):
        separation_figure([[image] * 3], ["vocals", "drums"])


def test_stft_picture_puts_impulses_at_their_times():
    """The STFT's slices are frames side by side (not half-overlapping sliCQT slices)."""
    stft = STFT(n_fft=1024, hop_length=256, frames_per_slice=8)
    x = torch.zeros(1, 2, 4 * SR)
    x[..., SR] = x[..., 3 * SR] = 1.0
    image, times = slicq_image(stft, stft(x), x.shape[-1], width=400)
    loudest = np.sort(times[np.argsort(image.mean(0))[-4:]])
    assert np.allclose(loudest, [1.0, 1.0, 3.0, 3.0], atol=0.015)
