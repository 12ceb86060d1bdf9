"""Refusals name what the user typed: the checks that tests/conftest.py applies to every refusal in the
suite, and the messages that named an option their command does not have."""

from __future__ import annotations

import argparse

from tests.cli import messages
from vaekit.cli import main


def test_the_check_finds_an_option_the_command_lacks_and_a_message_naming_nothing():
    assert messages.foreign_flags("score", "--image-size: image size 8 is too small") == ["--image-size"]
    assert messages.foreign_flags("score", "--dataset shapes cannot be drawn at 8x8") == []
    # an option of a command the message tells the user to run is that command's
    assert messages.foreign_flags("evaluate", "continue with: vaekit train --resume --out RUN") == []
    assert messages.foreign_flags("evaluate", "pass --resume") == ["--resume"]
    given = argparse.Namespace(command="sample", run="runs/mine", n=4)
    assert messages.names_something(given, "runs/mine has no fitted prior")
    assert not messages.names_something(given, "label must be in 0..9")


def test_a_shapes_dataset_too_small_for_the_model_names_the_dataset_option(trained_run, tmp_path, capsys):
    out = str(tmp_path / "s.csv")
    code = main(["score", str(trained_run), "--dataset", "shapes", "--k", "2", "--out", out])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "--image-size" not in err
    assert err.startswith("vaekit score: error: --dataset shapes cannot be drawn at the model's 8x8: ")
