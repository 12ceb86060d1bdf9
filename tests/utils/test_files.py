"""Reading what vaekit wrote (utils/files.py): every damaged file is a one-line error naming it."""

from __future__ import annotations

import pytest
import torch

from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_checkpoint, read_json


def test_an_empty_checkpoint_is_a_one_line_error_not_a_traceback(tmp_path):
    """torch.load of a 0-byte file raises an EOFError with no message; quoting its first line was an
    IndexError traceback (found by the run folder's state machine)."""
    path = tmp_path / "last.pt"
    path.write_bytes(b"")
    with pytest.raises(VaekitError) as info:
        read_checkpoint(path)
    assert str(info.value) == f"corrupt checkpoint {path}: EOFError"


def test_a_cut_checkpoint_and_a_foreign_one_are_named(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"config": "{}", "model": {"w": torch.ones(3)}}, path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(VaekitError, match=f"^corrupt checkpoint {path}: "):
        read_checkpoint(path)
    torch.save({"weights": torch.ones(3)}, path)
    with pytest.raises(VaekitError, match=f"^{path} is not a vaekit checkpoint$"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "text, why", [("", "Expecting value"), ("[1]", "not a JSON object"), ("{", "Expecting")]
)
def test_a_damaged_json_file_is_named(tmp_path, text, why):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(VaekitError, match=f"^corrupt {path}: .*{why}"):
        read_json(path)
