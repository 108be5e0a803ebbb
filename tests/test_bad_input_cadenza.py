"""Cadenza parameters are range-checked, each error naming the value and its range: audiogram
levels (a 500 dB HL audiogram was taken) and frequencies, and the boolean settings (the
string "false" read as true)."""

import json

import numpy as np
import pytest

pytest.importorskip("clarity", reason="pyclarity is not installed")

from xslicq.cadenza import CadenzaError, load_listeners, process_song  # noqa: E402
from xslicq.cadenza.listeners import FREQUENCY_RANGE, LEVEL_RANGE  # noqa: E402
from xslicq.cadenza.pipeline import check_flag  # noqa: E402

from helpers import SR, compose_config  # noqa: E402

CFS = [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]


def listener_file(tmp_path, cfs=CFS, left=(20,) * 8, right=(20,) * 8):
    path = tmp_path / "listeners.json"
    entry = {"audiogram_cfs": list(cfs), "audiogram_levels_l": list(left)}
    entry["audiogram_levels_r"] = list(right)
    path.write_text(json.dumps({"L1": entry}))
    return path


def test_the_ranges_are_an_audiometers():
    assert LEVEL_RANGE == (-10.0, 120.0) and FREQUENCY_RANGE == (125.0, 16000.0)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(right=(20, 20, 20, 500, 20, 20, 20, 20)), "audiogram_levels_r holds 500 dB HL"),
        (dict(left=(-30,) + (20,) * 7), "audiogram_levels_l holds -30 dB HL"),
        (dict(cfs=[250, 500, 1000, 2000, 3000, 4000, 6000, 40000]), "audiogram_cfs holds 40000 Hz"),
        (dict(cfs=[50, 500, 1000, 2000, 3000, 4000, 6000, 8000]), "audiogram_cfs holds 50 Hz"),
    ],
    ids=["500-dB-HL", "-30-dB-HL", "40-kHz", "50-Hz"],
)
def test_audiograms_outside_the_range_are_refused(tmp_path, change, message):
    path = listener_file(tmp_path, **change)
    unit = "Hz" if "cfs" in message else "dB HL"
    low, high = FREQUENCY_RANGE if unit == "Hz" else LEVEL_RANGE
    with pytest.raises(CadenzaError) as info:
        load_listeners(path)
    assert str(info.value) == (
        f"listener 'L1' in {path}: {message}, outside the range {low:g} to {high:g} {unit}"
    )


def test_the_ends_of_the_ranges_are_taken(tmp_path):
    path = listener_file(tmp_path, cfs=[125, 500, 16000], left=(-10, 0, 120), right=(120, 60, -10))
    (listener,) = load_listeners(path)
    assert listener.audiogram_right.levels.tolist() == [120, 60, -10]


@pytest.mark.parametrize("value", ["false", 0, None, "yes"])
def test_boolean_settings_must_be_booleans(value):
    with pytest.raises(CadenzaError, match=f"compressor must be true or false, got {value!r}"):
        check_flag(value, "compressor")
    assert check_flag(np.bool_(True), "compressor") is True
    stems = {"vocals": np.zeros((2, 100))}
    with pytest.raises(CadenzaError, match="soft_clip must be true or false"):
        process_song(stems, stems, load_listeners()[0], SR, soft=value)


def test_the_command_checks_its_boolean_settings(tmp_path):
    from xslicq.cadenza import run

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"never read")
    cfg = compose_config("cadenza", [f"checkpoint={ckpt}", "save_remix='no'"])
    with pytest.raises(CadenzaError, match="save_remix must be true or false, got 'no'"):
        run(cfg)
