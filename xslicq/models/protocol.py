"""The model protocol: what the separation pipeline reads of a network, declared once.

A network is a ``torch.nn.Module`` whose ``forward`` maps mixture magnitudes to masks in
[0, 1], one per target. The pipeline (:class:`~xslicq.system.SeparationSystem`, the export,
the separators and the streamer) reads nothing else of it than what :class:`SeparationModel`
lists:

=====================  ========  =====================================================
attribute              where     meaning
=====================  ========  =====================================================
``input_form``         class     how the mixture is fed: ``"matrix"`` (B, C, F, S, T),
                                 ``"frames"`` (B, C, F, S*T) or ``"ragged"`` (a list of
                                 blocks (B, C, rows, S, M)); the masks come back in the
                                 same form with a target axis after the batch
``columns_per_second`` class     the network's time grid in matrix columns per second of
                                 audio (``None``: the finest block's; a ragged network
                                 reads every block at its own size)
``nb_channels``        instance  audio channels it was built for
``causal``             instance  optional, default False: the output at a frame depends on
                                 no later frame; with ``step`` and ``initial_state`` the
                                 network streams (:func:`streams`)
``step``,              instance  optional: ``step(x, state) -> (masks, state)`` on the next
``initial_state``                frames and ``initial_state(nb_samples, device)``
``init_from_stats``    instance  optional: ``init_from_stats(mean, std)`` sets the input
                                 normalisation from training statistics per bin
=====================  ========  =====================================================

The constructor takes the geometry as keywords: ``nb_bins``, ``T`` (matrix),
``nb_bins`` (frames) or ``block_shapes`` (ragged), and ``channels`` and ``targets``
(:func:`~xslicq.system.build_model`). :func:`check_model_class` runs when a system is
built, so a network that misses a part of the protocol is one error naming it, not an
``AttributeError`` deep in a training step. docs/extending.md adds a model step by step.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol, runtime_checkable

from ..checks import is_number
from ..errors import ModelProtocolError

INPUT_FORMS = ("matrix", "frames", "ragged")
"""The forms a network can read the mixture in (its class's ``input_form``)."""


@runtime_checkable
class SeparationModel(Protocol):
    """The attributes every network has (the optional ones are in the module's table)."""

    input_form: str
    columns_per_second: float | None
    nb_channels: int

    def forward(self, x: Any) -> Any: ...


def model_class(factory) -> type:
    """The network class behind ``factory``: a class, or a ``functools.partial`` of one
    (the ``_partial_`` model configs)."""
    return factory.func if isinstance(factory, partial) else factory


def check_model_class(factory) -> type:
    """The class of ``factory``, checked against the class part of the protocol: an
    ``input_form`` of :data:`INPUT_FORMS` and a ``columns_per_second`` (a positive number
    or ``None``). Raises :class:`ModelProtocolError` naming the class and the attribute."""
    cls = model_class(factory)
    name = getattr(cls, "__qualname__", repr(cls))
    for attribute in ("input_form", "columns_per_second"):
        if not hasattr(cls, attribute):
            raise ModelProtocolError(
                f"network {name} has no class attribute {attribute!r}, which the separation "
                f"pipeline reads (xslicq.models.protocol; docs/extending.md)"
            )
    if cls.input_form not in INPUT_FORMS:
        raise ModelProtocolError(
            f"network {name}: input_form must be one of {', '.join(INPUT_FORMS)}, "
            f"got {cls.input_form!r}"
        )
    grid = cls.columns_per_second
    if grid is not None and not is_number(grid):
        raise ModelProtocolError(
            f"network {name}: columns_per_second must be a number or None, got {grid!r}"
        )
    return cls


def check_model(model) -> None:
    """``model``, built, against the instance part of the protocol: ``nb_channels`` and,
    for a network that says it is causal, ``step`` and ``initial_state``. Raises
    :class:`ModelProtocolError` naming the missing attribute."""
    name = type(model).__qualname__
    if not isinstance(model, SeparationModel):
        wanted = ("input_form", "columns_per_second", "nb_channels", "forward")
        missing = [a for a in wanted if not hasattr(model, a)]
        raise ModelProtocolError(
            f"network {name} has no {', '.join(repr(a) for a in missing)}, which the "
            f"separation pipeline reads (xslicq.models.protocol; docs/extending.md)"
        )
    if is_causal(model):
        missing = [a for a in ("step", "initial_state") if not callable(getattr(model, a, None))]
        if missing:
            raise ModelProtocolError(
                f"network {name} says it is causal but has no "
                f"{' or '.join(repr(a) for a in missing)}: a causal network streams "
                f"frame by frame through step(x, state) from initial_state(nb_samples)"
            )


def is_causal(model) -> bool:
    """Whether ``model`` declares itself causal (``causal``, False when absent)."""
    return bool(getattr(model, "causal", False))


def streams(model) -> bool:
    """Whether ``model`` streams: causal, with ``step`` and ``initial_state``."""
    return is_causal(model) and all(
        callable(getattr(model, a, None)) for a in ("step", "initial_state")
    )


def normalises_from_stats(model) -> bool:
    """Whether ``model`` sets its input normalisation from statistics (``init_from_stats``)."""
    return callable(getattr(model, "init_from_stats", None))
