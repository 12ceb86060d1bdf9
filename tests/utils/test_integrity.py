"""Every weights and checkpoint file's SHA-256, recorded when written and checked when read: a flipped
byte is refused in one line, a damaged last.pt falls back to the newest intact checkpoint, a full disk
keeps the last good one, and a crash at any moment of a write leaves a file that matches its record."""

from __future__ import annotations

import errno
import json

import pytest
import torch

import vaekit
from tests.conftest import error_of, quiet_trainer, tiny_config
from tests.training.test_loop import assert_same_run
from vaekit.training import resume
from vaekit.utils import atomic
from vaekit.utils import integrity as integrity_module
from vaekit.utils.integrity import MANIFEST, sha256_of, verify, write_recorded


def flip_byte(path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_run_records_the_digest_of_its_weights_and_checkpoints(tmp_path):
    out = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=2, save_every=1), out).run()
    record = json.loads((out / MANIFEST).read_text())
    files = [
        "model.safetensors",
        "checkpoints/last.pt",
        "checkpoints/epoch_001.pt",
        "checkpoints/epoch_002.pt",
    ]
    assert sorted(record) == sorted(files)
    assert all(record[name] == [sha256_of(out / name)] for name in files)


def test_one_flipped_bit_in_the_weights_is_refused_in_one_line(trained_run, capsys):
    vaekit.load(trained_run)
    flip_byte(trained_run / "model.safetensors")  # in the tensors' bytes: the header still parses
    message = error_of(vaekit.load, trained_run)
    assert message.startswith(f"corrupt weights file {trained_run / 'model.safetensors'}: its SHA-256")
    from vaekit.cli import main

    assert main(["sample", str(trained_run), "--out", str(trained_run / "s.png")]) == 1
    assert "corrupt weights file" in capsys.readouterr().err and not (trained_run / "s.png").exists()


def test_a_damaged_last_checkpoint_falls_back_to_the_newest_intact_one(tmp_path):
    out = tmp_path / "run"
    quiet_trainer(tiny_config(epochs=3, save_every=1), out).run()
    flip_byte(out / "checkpoints" / "last.pt")
    flip_byte(out / "checkpoints" / "epoch_003.pt", 300)
    notes = []
    resume(out, epochs=4, progress=False, log=notes.append)
    assert notes[0].startswith("note: corrupt checkpoint") and "resuming from epoch_002.pt" in notes[0]
    quiet_trainer(tiny_config(epochs=4), tmp_path / "straight").run()
    assert_same_run(tmp_path / "straight", out)  # epoch 3 done again, exactly as it was


def test_a_damaged_checkpoint_with_nothing_to_fall_back_on_is_one_line(trained_run):
    flip_byte(trained_run / "checkpoints" / "last.pt")
    message = error_of(resume, trained_run, epochs=5, progress=False, log=lambda line: None)
    assert message.startswith("corrupt checkpoint") and message.endswith(
        "it has no other (--save-every N keeps more)"
    )


def test_a_full_disk_keeps_the_last_good_checkpoint_and_the_run_resumes(tmp_path, monkeypatch):
    out = tmp_path / "run"
    trainer = quiet_trainer(tiny_config(epochs=3), out)
    real_save, saves = torch.save, []

    def save_until_the_disk_fills(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) == 2:  # epoch 2's checkpoint: a partial file, then ENOSPC
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    message = error_of(trainer.run)
    assert message == (
        f"could not write into {out} (No space left on device); the checkpoint before it is kept whole: free "
        f"space or make the folder writable, then continue with: vaekit train --resume --out {out}"
    )
    monkeypatch.setattr(torch, "save", real_save)
    verify(out / "checkpoints" / "last.pt")  # the last good one, whole, matching its record
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt"]  # no partial file left
    resume(out, progress=False, log=lambda line: None)
    quiet_trainer(tiny_config(epochs=3), tmp_path / "straight").run()
    assert_same_run(tmp_path / "straight", out)


@pytest.mark.parametrize("crash", ["before the rename", "before the record is pruned"])
def test_a_crash_at_any_moment_of_a_write_leaves_a_file_its_record_accepts(trained_run, monkeypatch, crash):
    path = trained_run / "checkpoints" / "last.pt"
    old = sha256_of(path)

    def crashing(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies here

    if crash == "before the rename":
        monkeypatch.setattr(atomic.os, "replace", crashing)
    else:
        real_write_json, calls = integrity_module.write_json, []

        def second_write_crashes(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                crashing()
            return real_write_json(*args, **kwargs)

        monkeypatch.setattr(integrity_module, "write_json", second_write_crashes)
    with pytest.raises(KeyboardInterrupt):
        write_recorded(path, lambda tmp: tmp.write_bytes(b"a new checkpoint"))
    monkeypatch.undo()
    verify(path)  # the old file (crash before the rename) or the new one: either is recorded
    assert (sha256_of(path) == old) == (crash == "before the rename")
    write_recorded(path, lambda tmp: tmp.write_bytes(b"the next one"))
    assert json.loads((trained_run / MANIFEST).read_text())["checkpoints/last.pt"] == [sha256_of(path)]


def test_files_outside_a_run_folder_are_written_and_read_unrecorded(tmp_path, trained_run):
    model = vaekit.load(trained_run)
    vaekit.save_model(model, tmp_path / "copy.safetensors")
    assert not (tmp_path / MANIFEST).exists()
    assert torch.equal(
        vaekit.load(tmp_path / "copy.safetensors").decode(torch.zeros(1, 2)), model.decode(torch.zeros(1, 2))
    )


def test_a_damaged_record_refuses_every_read_and_names_the_way_out(trained_run):
    (trained_run / MANIFEST).write_text('{"model.safetensors": ["ab')  # cut short
    reads = (lambda: vaekit.load(trained_run), lambda: resume(trained_run, epochs=3, log=lambda line: None))
    for read in reads:
        message = error_of(read)
        assert message.startswith(f"corrupt {trained_run / MANIFEST} (Unterminated string")
        assert message.endswith("the run's files cannot be checked (remove it to read them unchecked)")
    (trained_run / MANIFEST).unlink()
    assert vaekit.load(trained_run).latent_dim == 2
