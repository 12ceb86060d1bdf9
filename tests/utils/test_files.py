"""Reading what vaekit wrote (utils/files.py): every damaged file is a one-line error naming it."""

from __future__ import annotations

import pytest
import torch

from vaekit.utils.errors import VaekitError
from vaekit.utils.files import first_intact_checkpoint, read_checkpoint, read_json
from vaekit.utils.integrity import MANIFEST, RUN_MARKER, DamagedRecord


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


def test_the_first_intact_checkpoint_skips_damaged_and_missing_ones(tmp_path):
    cut, foreign, good, later = (tmp_path / f"{name}.pt" for name in ("cut", "foreign", "good", "later"))
    torch.save({"config": "{}", "model": {"w": torch.ones(3)}}, cut)
    cut.write_bytes(cut.read_bytes()[:40])
    torch.save({"weights": torch.ones(3)}, foreign)
    torch.save({"config": "{}", "model": {"w": torch.full((3,), 2.0)}}, good)
    torch.save({"config": "{}", "model": {"w": torch.full((3,), 3.0)}}, later)
    path, checkpoint = first_intact_checkpoint([tmp_path / "gone.pt", cut, foreign, good, later])
    assert path == good and torch.equal(checkpoint["model"]["w"], torch.full((3,), 2.0))
    assert first_intact_checkpoint([tmp_path / "gone.pt", cut, foreign]) is None
    assert first_intact_checkpoint([]) is None


def test_a_damaged_run_record_stops_the_search_for_an_intact_checkpoint(tmp_path):
    """checksums.json unreadable: no checkpoint can be checked, so none is taken as intact."""
    (tmp_path / RUN_MARKER).write_text("")
    (tmp_path / "checkpoints").mkdir()
    good = tmp_path / "checkpoints" / "last.pt"
    torch.save({"config": "{}", "model": {"w": torch.ones(3)}}, good)
    (tmp_path / MANIFEST).write_text("{")
    with pytest.raises(DamagedRecord, match="cannot be checked"):
        first_intact_checkpoint([good])


@pytest.mark.parametrize(
    "text, why", [("", "Expecting value"), ("[1]", "not a JSON object"), ("{", "Expecting")]
)
def test_a_damaged_json_file_is_named(tmp_path, text, why):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(VaekitError, match=f"^corrupt {path}: .*{why}"):
        read_json(path)
