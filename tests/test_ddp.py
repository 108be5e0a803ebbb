"""Data-parallel training: the sharded :class:`EpochSampler`, its exact resume per rank, the
``trainer=ddp`` config, real 2-process runs on the CPU (gloo, Lightning ``ddp_spawn``), and
the documented CPU recipe through ``python -m xslicq.train trainer=ddp``.

Known answers: the shards of an epoch partition its order; ``W`` ranks with a batch of ``b``
take the same steps as one process with a batch of ``W*b`` (the toy network has no
batch-dependent layer, and the default models use GroupNorm, which is per sample)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from xslicq.data.datasets import EpochSampler, ResumableLoader
from xslicq.quiet import quiet_third_party

from helpers import TINY_DATA, TINY_MODEL, compose_config, module_env, only_run_folder


def _order(n, seed, epoch):
    return epoch * n + np.random.default_rng([seed, epoch, 1]).permutation(n)


# ------------------------------------------------------------------------ sharding
@pytest.mark.parametrize("n", [12, 13])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_partition_the_epoch(n, world):
    """Every rank gets n // W indices, the shards are disjoint, and together they are the
    epoch's order less its last n % W positions (dropped, never padded)."""
    for epoch in (0, 3):
        shards = []
        for rank in range(world):
            s = EpochSampler(n, seed=7, rank=rank, world_size=world)
            s.set_epoch(epoch)
            shards.append(list(s))
            assert len(s) == len(shards[-1]) == n // world
        seen = [k for shard in shards for k in shard]
        assert len(set(seen)) == len(seen)  # disjoint
        order = _order(n, 7, epoch)
        assert sorted(seen) == sorted(order[: n // world * world].tolist())
        assert all(
            shards[r] == order[r : n // world * world : world].tolist() for r in range(world)
        )


def test_one_rank_is_the_undistributed_sampler():
    assert list(EpochSampler(10, seed=3, rank=0, world_size=1)) == list(EpochSampler(10, seed=3))


def test_ranks_together_make_the_big_batch():
    """Step s of W ranks with batch b uses the same samples as step s of one process with
    batch W*b."""
    n, world, b = 24, 2, 3
    one = list(EpochSampler(n, seed=1))
    ranks = [list(EpochSampler(n, seed=1, rank=r, world_size=world)) for r in range(world)]
    for step in range(n // (world * b)):
        together = [k for r in ranks for k in r[step * b : (step + 1) * b]]
        assert sorted(together) == sorted(one[step * world * b : (step + 1) * world * b])


@pytest.mark.parametrize("bad", [dict(rank=2, world_size=2), dict(rank=0), dict(world_size=2)])
def test_bad_rank_is_refused(bad):
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(10, **bad)


# ------------------------------------------------------------------------ resume
def _loader(n, batch, rank, world, seed=5):
    sampler = EpochSampler(n, seed=seed, rank=rank, world_size=world)
    return ResumableLoader(list(range(10 * n)), sampler, batch_size=batch, drop_last=True)


@pytest.mark.parametrize("done", [0, 1, 3, 5])
def test_mid_epoch_resume_is_exact_per_rank(done):
    """Each rank, resumed from the checkpointed loader state after ``done`` batches, sees
    exactly the rest of its uninterrupted shard (rank 0 saves; all ranks load)."""
    n, batch, world, epoch = 26, 2, 2, 1
    state = _loader(n, batch, 0, world).state_dict()
    state.update(epoch=epoch, batches_done=done, epoch_batches=n // world // batch)
    assert state["world_size"] == world and state["batch_size"] == batch
    for rank in range(world):
        full = _loader(n, batch, rank, world)
        full.sampler.set_epoch(epoch)
        expected = [k for b in full for k in b.tolist()][done * batch :]
        resumed = _loader(n, batch, rank, world)
        resumed.load_state_dict(state)
        got = [k for b in resumed for k in b.tolist()]
        assert got == expected
        # the resume applies once: the next iteration of the epoch is whole again
        assert len([k for b in resumed for k in b.tolist()]) == n // world // batch * batch


def test_resume_under_another_world_size_sees_the_rest_once():
    """Saved by 2 ranks after 2 batches of 2, resumed by 3 ranks: the positions used are a
    prefix of the order, so the 3 ranks share exactly the positions not yet used (less the
    remainder dropped to keep shards equal)."""
    n, epoch = 30, 0
    state = {"epoch": epoch, "batches_done": 2, "epoch_batches": 7, "batch_size": 2}
    state["world_size"] = 2
    used = _order(n, 5, epoch)[:8].tolist()
    rest = []
    for rank in range(3):
        loader = _loader(n, 1, rank, 3)
        loader.load_state_dict(state)
        rest += list(loader.sampler)
    assert not set(rest) & set(used) and len(set(rest)) == len(rest) == (n - 8) // 3 * 3


def test_complete_epoch_moves_on():
    loader = _loader(12, 2, 1, 2)
    loader.load_state_dict(
        {"epoch": 0, "batches_done": 3, "epoch_batches": 3, "batch_size": 2, "world_size": 2}
    )
    assert loader.sampler.epoch == 1 and list(loader.sampler) == _order(12, 5, 1)[1::2].tolist()


def test_old_checkpoint_state_reads_as_one_process():
    """States saved before DDP support (no batch_size / world_size) resume as before."""
    loader = _loader(12, 2, 0, 1)
    loader.load_state_dict({"epoch": 0, "batches_done": 2, "epoch_batches": 6})
    assert list(loader.sampler) == _order(12, 5, 0)[4:].tolist()


# ------------------------------------------------------------------------ config
def test_ddp_config(tmp_path):
    """trainer=ddp composes (GPU bf16 from gpu.yaml, the sampler left alone), and the CPU form
    its comments give instantiates a 2-process gloo DDP trainer."""
    from hydra.utils import instantiate

    cfg = compose_config("train", ["trainer=ddp", f"trainer.default_root_dir={tmp_path}"])
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.use_distributed_sampler is False
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    cpu = ("accelerator=cpu", "devices=2", "precision=32-true", "benchmark=null")
    cfg = compose_config(
        "train",
        ["trainer=ddp", f"trainer.default_root_dir={tmp_path}", *(f"trainer.{o}" for o in cpu)],
    )
    trainer = instantiate(cfg.trainer, logger=False)
    assert trainer.world_size == 2 and type(trainer.strategy).__name__ == "DDPStrategy"
    assert trainer.strategy._get_process_group_backend() == "gloo"


# ------------------------------------------------------------------------ 2 processes
class _Toy(torch.utils.data.Dataset):
    """Item k: (k, x_k, y_k) with x_k four seeded normals and y_k a fixed linear map of x_k."""

    def __len__(self):
        return 10**6

    def __getitem__(self, k):
        x = torch.from_numpy(np.random.default_rng(k).standard_normal(4).astype(np.float32))
        return k, x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0])


class _ToyModule(pl.LightningModule):
    """A linear regression (no batch-dependent layer) that records the indices it trained on
    and its losses into ``out/rank<r>.json``, and its final weights into ``out/rank<r>.pt``."""

    def __init__(self, out, n, batch):
        super().__init__()
        self.out, self.n, self.batch = str(out), n, batch
        self.net = torch.nn.Linear(4, 1)
        self.seen, self.losses = [], []

    def train_dataloader(self):
        return ResumableLoader(
            _Toy(), EpochSampler(self.n, seed=11), batch_size=self.batch, drop_last=True
        )

    def training_step(self, batch, _):
        k, x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x).squeeze(1), y)
        self.seen.append(k.tolist())
        self.losses.append(float(loss.detach()))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def on_train_end(self):
        name = f"{self.out}/rank{self.global_rank}"
        with open(f"{name}.json", "w") as f:
            json.dump({"seen": self.seen, "losses": self.losses}, f)
        torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, f"{name}.pt")


def _fit(out, devices, batch, n=16, epochs=2):
    out.mkdir()
    quiet_third_party()  # as xslicq.train.train does: this Trainer is built here
    torch.manual_seed(0)
    module = _ToyModule(out, n, batch)
    pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        use_distributed_sampler=False,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module)
    runs = [json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)]
    weights = [torch.load(out / f"rank{r}.pt") for r in range(devices)]
    return runs, weights


def test_two_gloo_ranks_equal_one_process_with_twice_the_batch(tmp_path):
    """Lightning DDP (ddp_spawn, gloo, 2 CPU processes, use_distributed_sampler=False): every
    index of every epoch is trained on exactly once across the ranks, and 2 ranks x batch 2
    end with the weights of 1 process x batch 4 (mean losses: DDP averages the ranks'
    gradients). Tolerance 1e-6 (float32 sums in another order); measured 3e-8 on the
    weights, 2e-6 on losses of order 1-10."""
    n, epochs = 16, 2
    ddp, ddp_w = _fit(tmp_path / "ddp", 2, 2, n, epochs)
    one, one_w = _fit(tmp_path / "one", 1, 4, n, epochs)
    for epoch in range(epochs):
        steps = slice(epoch * n // 4, (epoch + 1) * n // 4)
        seen = [k for run in ddp for batch in run["seen"][steps] for k in batch]
        assert sorted(seen) == list(range(epoch * n, (epoch + 1) * n))  # each exactly once
    for step, big in enumerate(one[0]["seen"]):
        assert sorted(big) == sorted(ddp[0]["seen"][step] + ddp[1]["seen"][step])
    # the mean of the ranks' losses is the big batch's loss, step by step
    ddp_loss = np.mean([run["losses"] for run in ddp], axis=0)
    np.testing.assert_allclose(ddp_loss, one[0]["losses"], rtol=1e-5, atol=1e-6)
    for key in one_w[0]:
        torch.testing.assert_close(ddp_w[0][key], ddp_w[1][key], rtol=0, atol=0)
        torch.testing.assert_close(ddp_w[0][key], one_w[0][key], rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------ the CLI
# conf/trainer/ddp.yaml's CPU recipe (gloo, 2 processes)
DDP_CPU = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.precision=32-true",
    "trainer.benchmark=null",
]


def _train_in(cwd, *args):
    r = subprocess.run(
        [sys.executable, "-m", "xslicq.train", *args],
        cwd=cwd,
        env=module_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_ddp_cli_trains_checkpoints_resumes_and_tests(tmp_path, tiny_musdb):
    """``python -m xslicq.train trainer=ddp`` with 2 CPU processes: Lightning starts rank 1 by
    running the command again, into the run folder that rank 0 named; the run trains (one
    batch per rank and epoch: 4 excerpts, batch 2), writes one last.ckpt, one TensorBoard
    run, and exits 0; ``resume=<folder>`` goes on in the same folder and runs the test stage.
    (Rank 1 died in log_hparams, which only rank 0 can write, and Lightning killed the run:
    exit 137; last.ckpt then hung the ranks, rank 0 linking it while rank 1 waited in
    save_checkpoint's barrier.)"""
    tiny = [f"data.root={tiny_musdb}", *TINY_DATA, *TINY_MODEL, "log_media=false"]
    limits = [
        "trainer.max_epochs=2",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
    ]
    _train_in(tmp_path, *DDP_CPU, *tiny, *limits)
    run = only_run_folder(tmp_path)  # rank 1 made none of its own
    last = run / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert (state["epoch"], state["global_step"]) == (1, 2)
    events = list(run.rglob("events.out.tfevents.*"))
    assert [p.parent for p in events] == [run / "tensorboard"]  # rank 0's only
    assert (run / ".hydra" / "config.yaml").is_file()

    r = _train_in(tmp_path, f"resume={run}", "trainer.max_epochs=3", "test=true")
    assert only_run_folder(tmp_path) == run
    state = torch.load(last, weights_only=True)
    assert (state["epoch"], state["global_step"]) == (2, 3)
    results = json.loads((run / "test" / "results.json").read_text())
    assert Path(results["checkpoint"]).parent == run / "checkpoints"
    assert all(p.parent == run / "tensorboard" for p in run.rglob("events.out.tfevents.*"))
    assert "`Trainer.fit` stopped: `max_epochs=3` reached." in (run / "train.log").read_text()
    assert "test/sdr" in r.stdout


@pytest.mark.slow
def test_ddp_spawn_cli_writes_last_checkpoint(tmp_path, tiny_musdb):
    """``trainer.strategy=ddp_spawn`` (ranks started from inside the process): the epoch's
    last.ckpt is written by all ranks together (rank 1 died in the checkpoint barrier after
    fit, "Connection closed by peer", while rank 0 hard-linked last.ckpt to the best one)."""
    run = tmp_path / "run"
    tiny = [f"data.root={tiny_musdb}", *TINY_DATA, *TINY_MODEL, "log_media=false"]
    limits = [
        "trainer.max_epochs=2",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
    ]
    _train_in(
        tmp_path, *DDP_CPU, "trainer.strategy=ddp_spawn", *tiny, *limits, f"hydra.run.dir={run}"
    )
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (state["epoch"], state["global_step"]) == (1, 2)
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    assert best.stat().st_ino == (run / "checkpoints" / "last.ckpt").stat().st_ino  # a link
