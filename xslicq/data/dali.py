"""GPU training loader with NVIDIA DALI (``data.loader=dali``).

DALI's readers shuffle the stem files of every source independently (a random mix),
decode the WAV files in its CPU worker threads, and cut a random ``seq_dur`` segment and
apply the random gain on the GPU. The random channel swap and the mixture sum are done on
the GPU batch in torch. Batches have the structure of the default loader:
``(mixture (batch, channels, samples), targets (batch, nb_targets, channels, samples))``,
already on the GPU. Files must be stereo (the default loader also upmixes mono files).

Needs ``pip install 'xslicq[gpu]'`` (nvidia-dali-cuda130) and a CUDA GPU.
"""

from __future__ import annotations

import torch

from . import SOURCES

UNAVAILABLE = (
    "data.loader=dali needs NVIDIA DALI (pip install 'xslicq[gpu]', package "
    "nvidia-dali-cuda130) and a CUDA GPU; {why}. Use data.loader=default."
)


def check_dali() -> None:
    """Raise a clear error unless DALI imports and a CUDA GPU is present."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError as err:
        raise RuntimeError(UNAVAILABLE.format(why=f"it is not installed ({err})")) from err
    if not torch.cuda.is_available():
        raise RuntimeError(UNAVAILABLE.format(why="no CUDA GPU is available"))


def _pipeline(
    files: dict,
    frames: int,
    gain: tuple,
    batch_size: int,
    seed: int,
    device_id: int,
    num_threads: int,
):
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed)
    def segments():
        stems = []
        for i, source in enumerate(SOURCES):
            encoded, _ = fn.readers.file(
                files=files[source], random_shuffle=True, name=f"reader_{source}", seed=seed + i
            )
            audio, _ = fn.decoders.audio(encoded, dtype=types.FLOAT, downmix=False)
            length = fn.shapes(audio, dtype=types.INT64)[0]
            start = fn.cast(
                fn.random.uniform(range=(0.0, 1.0)) * fn.cast(length - frames, dtype=types.FLOAT),
                dtype=types.INT64,
            )
            segment = fn.slice(audio.gpu(), start, frames, axes=[0])  # (frames, channels)
            segment = segment * fn.random.uniform(range=gain)
            stems.append(fn.transpose(segment, perm=[1, 0]))  # (channels, frames)
        return tuple(stems)

    return segments()


class DaliTrainLoader:
    """Iterable of training batches built by a DALI pipeline (see the module docstring)."""

    def __init__(
        self, dataset, batch_size: int, seed: int = 42, device_id: int = 0, num_threads: int = 2
    ):
        check_dali()
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        self.dataset, self.batch_size = dataset, batch_size
        self.targets = [SOURCES.index(t) for t in dataset.targets]
        files = {s: [str(t.paths[s]) for t in dataset.tracks] for s in SOURCES}
        pipe = _pipeline(
            files, dataset.frames, dataset.gain, batch_size, seed, device_id, num_threads
        )
        pipe.build()
        self.iterator = DALIGenericIterator(
            [pipe],
            list(SOURCES),
            reader_name="reader_vocals",
            last_batch_policy=LastBatchPolicy.DROP,
            auto_reset=True,
        )
        self.generator = torch.Generator(device=f"cuda:{device_id}").manual_seed(seed)

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def __iter__(self):
        for _ in range(len(self)):
            batch = next(self.iterator)[0]
            stems = torch.stack([batch[s] for s in SOURCES], dim=1)  # (B, 4, C, T)
            if self.dataset.channel_swap:
                swap = (
                    torch.rand(stems.shape[0], 4, generator=self.generator, device=stems.device)
                    < 0.5
                )
                stems = torch.where(swap[..., None, None], stems.flip(2), stems)
            yield stems.sum(1), stems[:, self.targets]
