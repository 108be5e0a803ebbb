"""Runs a lab can leave running: exact resume after a signal at any batch, one last.ckpt,
checkpoint files and folders, resume checks, run folder names and device errors."""

import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import open_dict

from xslicq.callbacks import TrainingInterrupted, remove_stale_temp_files, resume_command
from xslicq.config import DeviceError, _beside, check_device, overrides_name
from xslicq.train import CheckpointError, check_compatible, read_checkpoint, train

from helpers import (
    ROOT,
    TINY_DATA,
    TINY_MODEL,
    compose_config,
    module_env,
    only_run_folder,
    run_module,
    tiny_train_config,
)

# three training batches per epoch, two epochs
THREE_BATCHES = [
    "trainer.max_epochs=2",
    "data.samples_per_track=3",
    "trainer.limit_train_batches=1.0",
    "log_media=false",
]


class SignalAt(pl.Callback):
    """Sends ``signum`` to this process at the start of training batch ``batch`` of
    ``epoch``, as a scheduler or Ctrl-C would."""

    def __init__(self, epoch: int, batch: int, signum: int = signal.SIGTERM):
        self.at, self.signum = (epoch, batch), signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.at:
            os.kill(os.getpid(), self.signum)


def with_signal(cfg, epoch, batch, signum=signal.SIGTERM):
    with open_dict(cfg):
        cfg.callbacks["signal_at"] = {
            "_target_": f"{__name__}.SignalAt",
            "epoch": epoch,
            "batch": batch,
            "signum": int(signum),
        }
    return cfg


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_musdb):
    """The reference: two epochs of three batches without a stop."""
    out = tmp_path_factory.mktemp("uninterrupted")
    metrics, objects = train(tiny_train_config(out, tiny_musdb, THREE_BATCHES))
    weights = {k: v.detach().clone() for k, v in objects["system"].state_dict().items()}
    return metrics, weights, objects["trainer"].global_step


@pytest.mark.parametrize(
    "epoch, batch, signum",
    [
        (0, 1, signal.SIGTERM),  # in the middle of the first epoch
        (0, 2, signal.SIGINT),  # the last batch of an epoch: resumes at the next one
        (1, 0, signal.SIGTERM),  # after a validated epoch
    ],
)
def test_a_stopped_run_resumes_to_the_same_weights(
    epoch, batch, signum, uninterrupted, tmp_path, tiny_musdb
):
    ref_metrics, ref_weights, ref_steps = uninterrupted
    stopped = with_signal(
        tiny_train_config(tmp_path / "a", tiny_musdb, THREE_BATCHES), epoch, batch, signum
    )
    with pytest.raises(TrainingInterrupted) as info:
        train(stopped)
    stop = info.value
    assert stop.exit_code == 128 + signum and stop.step == 3 * epoch + batch + 1
    assert f"resume with: python -m xslicq.train resume={tmp_path / 'a'}" in str(stop)
    files = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    # one last.ckpt; the stopped partial epoch is not validated (no best checkpoint of it)
    if epoch == 0:
        assert files == ["last.ckpt"]
    else:
        assert len(files) == 2 and files[0].startswith("best-epoch000-") and files[1] == "last.ckpt"
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == stop.step

    metrics, objects = train(
        tiny_train_config(tmp_path / "b", tiny_musdb, [*THREE_BATCHES, f"ckpt_path={last}"])
    )
    assert objects["trainer"].global_step == ref_steps == 6
    weights = objects["system"].state_dict()
    for name, ref in ref_weights.items():
        torch.testing.assert_close(weights[name], ref, atol=1e-6, rtol=0, msg=name)
    assert metrics["val/sdr"] == pytest.approx(ref_metrics["val/sdr"], abs=1e-5)
    assert metrics["val/sdr_best"] == pytest.approx(ref_metrics["val/sdr_best"], abs=1e-5)


def test_one_file_per_checkpoint_event_with_the_umask_mode(tmp_path, tiny_musdb):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = folder / ".last.ckpt.k3j2x.tmp"  # left by a process killed while saving
    stale.write_bytes(b"half a checkpoint")
    old = os.umask(0o027)
    try:
        train(tiny_train_config(tmp_path, tiny_musdb, ["log_media=false"]))
    finally:
        os.umask(old)
    files = sorted(folder.iterdir())
    assert [p.name[:5] for p in files] == ["best-", "last."]
    best, last = files
    assert best.stat().st_ino == last.stat().st_ino  # the same epoch: one file, two names
    assert stat.S_IMODE(best.stat().st_mode) == 0o640  # 0666 less the umask, not 0600


def test_stale_temporary_files_are_removed(tmp_path):
    (tmp_path / ".best-epoch001.ckpt.abc.tmp").write_bytes(b"x")
    keep = tmp_path / "notes.tmp"
    keep.write_bytes(b"y")
    assert [p.name for p in remove_stale_temp_files(tmp_path)] == [".best-epoch001.ckpt.abc.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.tmp"]
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_resuming_a_finished_run_trains_nothing_and_reports_it(tmp_path, tiny_musdb, caplog):
    first, objects = train(tiny_train_config(tmp_path / "a", tiny_musdb, ["log_media=false"]))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    again = tiny_train_config(tmp_path / "b", tiny_musdb, ["log_media=false", f"ckpt_path={last}"])
    metrics, objects = train(again)
    assert objects["trainer"].global_step == 2
    assert "nothing to train" in caplog.text and "raise trainer.max_epochs (now 1)" in caplog.text
    assert metrics["val/sdr_best"] == pytest.approx(first["val/sdr_best"], abs=1e-6)


def test_unreadable_and_foreign_checkpoints_are_one_clear_error(tmp_path, tiny_musdb):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {bad} .*damaged"):
        read_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "none.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not an xslicq training checkpoint"):
        read_checkpoint(tmp_path / "other.ckpt")
    cfg = tiny_train_config(tmp_path / "run", tiny_musdb, [f"ckpt_path={bad}"])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        train(cfg)


def test_a_checkpoint_of_another_setup_is_refused_naming_the_difference():
    saved = {
        "transform": {"scale": "bark", "bins": 64},
        "model": {"hidden": 8},
        "data": {"targets": ["vocals", "drums"], "sample_rate": 44100},
    }
    same = {**saved, "data": {**saved["data"], "root": "/elsewhere"}}  # data source may change
    check_compatible(saved, same, "x.ckpt")
    other = {
        **saved,
        "transform": {"scale": "mel", "bins": 64},
        "data": {**saved["data"], "targets": ["vocals"]},
    }
    with pytest.raises(CheckpointError) as info:
        check_compatible(saved, other, "x.ckpt")
    message = str(info.value)
    assert "transform.scale: 'bark' in the checkpoint, 'mel' now" in message
    assert "data.targets: ['vocals', 'drums'] in the checkpoint, ['vocals'] now" in message
    assert "model" not in message.split("does not fit this run:")[1].split(".")[0]


def test_resume_with_another_transform_is_refused_before_training(tmp_path, tiny_musdb):
    train(tiny_train_config(tmp_path / "a", tiny_musdb, ["log_media=false"]))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    cfg = tiny_train_config(tmp_path / "b", tiny_musdb, [f"ckpt_path={last}", "transform=mel"])
    with pytest.raises(
        CheckpointError, match="transform.scale: 'bark' in the checkpoint, 'mel' now"
    ):
        train(cfg)
    assert not (tmp_path / "b" / "checkpoints").exists()


# ------------------------------------------------------------------ folders and names
def test_run_folder_names_carry_the_overrides_and_a_unique_id():
    assert overrides_name("loss-mse+transform-bark") == "loss-mse+transform-bark"
    assert overrides_name("data.root-/a b/c") == "data.root-a-b-c"
    assert overrides_name("oracle-[irm,mixphase]+x-a=b") == "oracle-irm-mixphase-+x-a-b"
    long = "+".join(f"model.k{i}-{i}" for i in range(20))
    name = overrides_name(long)
    assert len(name) <= 60 and name.startswith("model.k0-0+model.k1-1") and "@" in name
    assert overrides_name(long) == name and overrides_name(long + "+x-1") != name
    code = (
        "from xslicq.config import _run_dir; "
        "print(_run_dir(None, 'outputs/train', 'transform-bark'), _run_dir(None, 'o', 'a-1'))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        for _ in range(2)
    ]
    names = [r.stdout.split() for r in runs]
    for first, second in names:  # one name per process, whatever resolves it
        assert first.startswith("outputs/train/") and "_transform-bark_" in first
        assert first.rsplit("_", 1)[1] == second.rsplit("_", 1)[1]
    assert names[0][0] != names[1][0]  # two runs started together: two folders


def _plain_value(key, value):
    """``key=value`` is one shell word that Hydra reads back as ``value``, unquoted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (word,) = shlex.split(f"{key}={value}")
    assert not re.search(r"[^A-Za-z0-9._+@/=-]", word), word  # nothing a shell expands
    assert OverridesParser.create().parse_override(word).value() == value


@pytest.mark.parametrize(
    "overrides",
    [
        ["transform=bark", "loss=mse"],
        [
            "+x=[irm,mixphase]",
            "trainer.max_steps=-1",
            "+trainer.foo=a b",
            "~callbacks.progress_bar",
        ],
        [f"+model.k{i}=v{i}" for i in range(20)],  # cut, with a hash
    ],
)
def test_run_folders_need_no_quoting_in_resume_checkpoint_or_eval(overrides):
    """The folder a run names itself from its overrides, the checkpoints in it and the
    evaluation folder beside them go into resume=, checkpoint= and a shell as they are
    (they failed with Hydra's "mismatched input '='" when named with = and ,)."""
    cfg = compose_config(
        "train", [*overrides, "hydra.runtime.output_dir=/o"], return_hydra_config=True
    )
    run = cfg.hydra.run.dir
    assert run.startswith("outputs/train/20") and "=" not in run and "," not in run
    checkpoint = f"/x/{run}/checkpoints/best-epoch004-sdr-1.50.ckpt"
    _plain_value("resume", run)
    _plain_value("checkpoint", checkpoint)
    out = compose_config("evaluate", [f"checkpoint={checkpoint}", "metric=sdr"]).out
    assert out == f"/x/{run}/eval/best-epoch004-sdr-1.50_synthetic-24x20.0s-seed0_test_sdr"
    _plain_value("out", out)


@pytest.mark.parametrize(
    "folder",
    ["/runs/a b", "/runs/it's", '/runs/q"uote', "/runs/a=b,c~d", "/runs/x\\", "/r/1", "null"],
)
def test_printed_commands_quote_what_needs_quoting(folder):
    """A folder that a user named (hydra.run.dir=...) is quoted for Hydra and the shell in
    the commands the run prints; a plain one is left plain."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    command = resume_command(folder)
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "xslicq.train"] and len(words) == 4
    assert OverridesParser.create().parse_override(words[3]).value() == folder
    assert (command == f"python -m xslicq.train resume={folder}") == (folder == "/r/1")


def test_evaluation_outputs_go_next_to_the_checkpoint():
    assert _beside("runs/r1/checkpoints/best-x.ckpt", "eval", "test_sdr", "fb") == (
        "runs/r1/eval/best-x_test_sdr"
    )
    assert _beside("model.ckpt", "cadenza", "test", "fb") == "cadenza/model_test"
    assert _beside(None, "eval", "test", "outputs/evaluate/now") == "outputs/evaluate/now"
    cfg = compose_config("evaluate", ["checkpoint=o/run/checkpoints/last.ckpt", "metric=sdr"])
    assert cfg.out == "o/run/eval/last_synthetic-24x20.0s-seed0_test_sdr"


def test_common_trainer_keys_override_without_plus():
    cfg = compose_config(
        "train",
        [
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=0.5",
            "trainer.max_steps=7",
            "trainer.accumulate_grad_batches=2",
            "trainer.num_sanity_val_steps=0",
            "model=umx",
            "model.max_bin=100",
        ],
    )
    assert cfg.trainer.limit_train_batches == 3 and cfg.trainer.max_steps == 7
    assert cfg.model.max_bin == 100


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_an_unavailable_device_is_one_clear_error(tmp_path):
    with pytest.raises(DeviceError, match="trainer.accelerator=gpu needs a CUDA GPU"):
        check_device("gpu", "trainer.accelerator")
    with pytest.raises(DeviceError, match="unknown device='tpu7'"):
        check_device("tpu7")
    assert check_device("cpu") == "cpu"
    r = run_module(
        "xslicq.separate",
        "mix.wav",
        "--checkpoint",
        "m.ckpt",
        "--device",
        "cuda",
        "--out",
        str(tmp_path / "o"),
        timeout=300,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "device=cuda needs a CUDA GPU" in r.stderr


# --------------------------------------------------------------------------- the CLI
def _cli(args, timeout=600, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "xslicq.train", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_cli_sigterm_exits_143_and_resume_continues_in_the_same_folder(tmp_path, tiny_musdb):
    """The scheduler's view: SIGTERM mid-run gives exit status 143 and the resume command;
    ``resume=<folder>`` continues there (same TensorBoard run, the run's config kept, the
    resume recorded beside it); resuming again trains nothing and exits 0; another
    transform is refused with status 2 and one line."""
    run = tmp_path / "run"
    base = [
        "trainer=debug",
        f"data.root={tiny_musdb}",
        *TINY_DATA,
        *TINY_MODEL,
        "system.init_stats_batches=1",
        "log_media=false",
        "trainer.num_sanity_val_steps=0",
    ]
    proc = _cli([*base, "trainer.max_epochs=100", f"hydra.run.dir={run}"])
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 400
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert f"resume with: python -m xslicq.train resume={run}" in err
    stopped = torch.load(last, weights_only=True)
    record = (run / ".hydra" / "config.yaml").read_text()

    target = stopped["epoch"] + 2
    r = run_module("xslicq.train", f"resume={run}", f"trainer.max_epochs={target}")
    assert r.returncode == 0, r.stderr[-2000:]
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] > stopped["global_step"] and resumed["epoch"] == target - 1
    assert (run / ".hydra" / "config.yaml").read_text() == record
    assert len(list((run / ".hydra").glob("resumed-*"))) == 1
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) >= 2
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == [
        ".hydra",
        "checkpoints",
        "tensorboard",
    ]

    r = run_module("xslicq.train", f"resume={run}", f"trainer.max_epochs={target}")
    assert r.returncode == 0 and "nothing to train" in r.stderr + r.stdout

    r = run_module("xslicq.train", f"resume={run}", "transform=mel")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        "error: checkpoint" in r.stderr and "transform.scale: 'bark' in the checkpoint" in r.stderr
    )


def test_default_callbacks_stop_early_and_monitor_the_learning_rate(tmp_path):
    from hydra.utils import instantiate

    cfg = tiny_train_config(tmp_path, tmp_path)  # a Hydra run: checkpoint folders resolve
    kinds = {type(c).__name__: c for c in map(instantiate, cfg.callbacks.values())}
    stop = kinds["EarlyStopping"]
    assert stop.monitor == "val/sdr" and stop.mode == "max" and stop.patience == 60
    assert "LearningRateMonitor" in kinds and "LastCheckpoint" in kinds
    best = kinds["ModelCheckpoint"]
    assert best.save_last is False and best.monitor == "val/sdr"


# ------------------------------------------------------------- commands as printed
TINY_CLI = [*TINY_DATA, *TINY_MODEL, "log_media=false", "trainer.num_sanity_val_steps=0"]


@pytest.mark.slow
def test_printed_resume_and_evaluate_commands_work_when_pasted(tmp_path, tiny_musdb):
    """A run started in a folder names its own run folder (from overrides with ``=``, ``,``,
    a list and a negative number); Ctrl-C prints the resume command, which runs as printed
    (the test appends only an epoch limit), and the resumed run's closing lines name the
    evaluation command, which runs as printed on the tiny test split (the test appends the
    data). Both failed with Hydra's "mismatched input '='" when folders had = and , in them."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xslicq.train",
            "trainer=debug",
            f"data.root={tiny_musdb}",
            *TINY_CLI,
            "data.targets=[vocals,drums,bass,other]",
            "trainer.max_steps=-1",
            "trainer.max_epochs=100",
        ],
        cwd=tmp_path,
        env=module_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 400
    while not list(tmp_path.glob("outputs/train/*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    run = only_run_folder(tmp_path)
    assert "=" not in run.name and "," not in run.name
    (printed,) = re.findall(r"resume with: (.+)$", err, re.M)
    words = shlex.split(printed)
    assert words[:3] == ["python", "-m", "xslicq.train"] and words[3] == f"resume={run}"
    epoch = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]

    r = run_module(words[2], *words[3:], f"trainer.max_epochs={epoch + 2}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == epoch + 1
    assert re.findall(r"resume with: (.+)$", r.stdout, re.M) == [printed]
    (evaluate,) = re.findall(r"evaluate with: (.+)$", r.stdout, re.M)
    words = shlex.split(evaluate)
    assert words[:3] == ["python", "-m", "xslicq.evaluate"]
    best = Path(words[3].removeprefix("checkpoint="))
    assert best.parent == run / "checkpoints" and best.name.startswith("best-epoch")
    data = [f"data.root={tiny_musdb}", "data.synthetic=null", "metric=sdr", "workers=0"]
    r = run_module(words[2], *words[3:], *data, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (run / "eval" / f"{best.stem}_{tiny_musdb.name}_test_sdr" / "summary.md").is_file()
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["train"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "first, then, steps",
    [
        # two batches an epoch (trainer=debug): stopped at step 2, then 2 more
        (["trainer.max_epochs=10", "trainer.max_steps=2"], ["trainer.max_steps=4"], (2, 4)),
        (["trainer.max_epochs=1"], ["trainer.max_epochs=2"], (2, 4)),
        # one second: stopped in some epoch (the stop ends it); one more epoch on resume
        (
            ["trainer.max_epochs=50", "trainer.max_time=00:00:00:01"],
            ["trainer.max_time=00:01:00:00", "trainer.max_epochs={next}"],
            None,
        ),
    ],
    ids=["max_steps", "max_epochs", "max_time"],
)
def test_resume_past_a_reached_limit(first, then, steps, tmp_path, tiny_musdb):
    """A run that stopped at a limit resumes with a larger one and trains on in its folder
    (with max_steps it failed: "Early stopping conditioned on metric val/sdr which is not
    available", Lightning replaying the end of the epoch without its validation)."""
    run = tmp_path / "run"
    base = ["trainer=debug", f"data.root={tiny_musdb}", *TINY_CLI]
    r = run_module("xslicq.train", *base, *first, f"hydra.run.dir={run}")
    assert r.returncode == 0, r.stderr[-2000:]
    last = run / "checkpoints" / "last.ckpt"
    stopped = torch.load(last, weights_only=True)
    if steps is None:  # the time limit: wherever it stopped, one more whole epoch
        assert stopped["epoch"] < 49
        steps = (stopped["global_step"], stopped["global_step"] + 2)
    then = [t.format(next=stopped["epoch"] + 2) for t in then]
    r = run_module("xslicq.train", f"resume={run}", *then)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing to train" not in r.stdout + r.stderr
    resumed = torch.load(last, weights_only=True)
    assert (stopped["global_step"], resumed["global_step"]) == steps
    assert resumed["epoch"] == stopped["epoch"] + 1
