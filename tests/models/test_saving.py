"""vaekit.load: run folders, safetensors files and checkpoints; corrupt and mismatched files."""

import json

import pytest
import torch
from safetensors.torch import save_file

import vaekit
from tests.conftest import quiet_trainer, signal_at_step, tiny_config
from vaekit.models import MLPVAE
from vaekit.models.saving import CONFIG_KEY, model_from_checkpoint
from vaekit.training import TrainingInterrupted
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_checkpoint, read_safetensors


def test_load_from_run_folder_safetensors_and_checkpoint_agree(trained_run):
    z = torch.randn(4, 2)
    from_run = vaekit.load(trained_run)
    assert isinstance(from_run, MLPVAE) and not from_run.training
    for path in (trained_run / "model.safetensors", trained_run / "checkpoints" / "last.pt"):
        assert torch.equal(vaekit.load(path).decode(z), from_run.decode(z))


def test_a_checkpoint_already_read_gives_the_model_its_file_gives(trained_run):
    path = trained_run / "checkpoints" / "last.pt"
    checkpoint = read_checkpoint(path)
    model, z = model_from_checkpoint(checkpoint, path), torch.randn(4, 2)
    assert not model.training and torch.equal(model.decode(z), vaekit.load(path).decode(z))
    config = json.loads(checkpoint["config"])
    config["model"]["latent_dim"] = 5
    config["model"].pop("prior", None)  # a fitted prior's own shape check would come first
    with pytest.raises(VaekitError, match=r"weights in .*last\.pt do not match its config"):
        model_from_checkpoint({**checkpoint, "config": json.dumps(config)}, path)


def test_python_api_shapes(trained_run):
    m = vaekit.load(trained_run)
    x = torch.rand(5, 1, 8, 8)
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (5, 2)
    assert m.decode(mu).shape == (5, 1, 8, 8) and m.sample(3).shape == (3, 1, 8, 8)
    assert m.reconstruct(x).shape == (5, 1, 8, 8)


def test_corrupt_weights(trained_run, tmp_path):
    (tmp_path / "loose.safetensors").write_bytes(b"\x00garbage" * 10)  # outside a run: no record
    with pytest.raises(VaekitError, match="corrupt weights file"):
        vaekit.load(tmp_path / "loose.safetensors")
    (trained_run / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(VaekitError, match="corrupt weights file .*model.safetensors: its SHA-256"):
        vaekit.load(trained_run)


def test_a_damaged_weights_file_names_the_command_that_writes_it_again(trained_run):
    """Only while a checkpoint can: train --resume rebuilds it (training/finish.py), or trains on to it."""
    hint = f"; vaekit train --resume --out {trained_run} writes it again from the run's checkpoint"
    (trained_run / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(VaekitError, match="corrupt weights file") as info:
        vaekit.load(trained_run)
    assert str(info.value).endswith(hint)
    (trained_run / "model.safetensors").unlink()
    with pytest.raises(VaekitError) as info:
        vaekit.load(trained_run)
    assert str(info.value) == f"no weights file {trained_run / 'model.safetensors'}{hint}"
    last = trained_run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])  # no checkpoint left to rebuild from: no such promise
    with pytest.raises(VaekitError) as info:
        vaekit.load(trained_run)
    assert str(info.value) == f"no weights file {trained_run / 'model.safetensors'}"


def test_a_missing_weights_file_beside_a_damaged_record_names_the_record_first(trained_run):
    """No checkpoint can be read while checksums.json is damaged: the record is the first repair."""
    (trained_run / "model.safetensors").unlink()
    (trained_run / "checksums.json").write_text("{cut")
    with pytest.raises(VaekitError) as info:
        vaekit.load(trained_run)
    message = str(info.value)
    assert message.startswith(f"no weights file {trained_run / 'model.safetensors'}; corrupt ")
    assert message.endswith("(remove it to read them unchecked)") and "train --resume" not in message
    (trained_run / "checksums.json").unlink()
    with pytest.raises(VaekitError, match="train --resume --out .* writes it again"):
        vaekit.load(trained_run)


def test_a_run_stopped_between_its_weights_and_its_config_still_loads(trained_run, monkeypatch):
    """A resume's first epoch drops the fitted prior: model.safetensors is written without it, then
    config.json. A process killed between the two leaves config.json with the prior: found by the run
    folder's state machine (SIGKILL), refused as 'weights do not match its config'."""
    import vaekit.training.loggers

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # where a SIGKILL could fall

    assert "prior" in json.loads((trained_run / "config.json").read_text())["model"]
    monkeypatch.setattr(vaekit.training.loggers, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        quiet_trainer(tiny_config(epochs=3), trained_run, resume=True).run()
    assert "prior" in json.loads((trained_run / "config.json").read_text())["model"]
    model = vaekit.load(trained_run)  # the weights' own config: no prior
    assert model.fitted_prior is None
    assert torch.equal(
        model.decode(torch.zeros(1, 2)),
        vaekit.load(trained_run / "model.safetensors").decode(torch.zeros(1, 2)),
    )


def test_a_run_stopped_inside_its_first_epoch_says_it_has_no_weights_yet(tmp_path):
    run = tmp_path / "run"
    trainer = quiet_trainer(tiny_config(epochs=1), run)
    signal_at_step(trainer, 1)
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    with pytest.raises(VaekitError) as info:
        vaekit.load(run)
    assert str(info.value) == (
        f"{run} has no weights yet: its training stopped inside the first epoch; go on with "
        f"vaekit train --resume --out {run}"
    )


def test_weights_that_do_not_match_the_config(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    config["model"]["latent_dim"] = 5
    del config["model"]["prior"]
    (trained_run / "config.json").write_text(json.dumps(config))
    with pytest.raises(VaekitError, match="do not match its config"):
        vaekit.load(trained_run)


def test_a_fitted_prior_that_does_not_match_the_model_is_refused(trained_run, tmp_path):
    """In the config a weights file carries (which a run folder's load prefers to config.json's where the
    two differ in the prior alone: see the test above)."""
    state, metadata = read_safetensors(trained_run / "model.safetensors")
    config = json.loads(metadata[CONFIG_KEY])
    config["prior"]["latent_dim"] = 5
    save_file(state, tmp_path / "damaged.safetensors", {CONFIG_KEY: json.dumps(config)})
    with pytest.raises(VaekitError, match="the prior is over 5-D latents; this mlp model's are 2-D"):
        vaekit.load(tmp_path / "damaged.safetensors")


def test_corrupt_checkpoint(trained_run):
    path = trained_run / "checkpoints" / "last.pt"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(VaekitError, match="corrupt checkpoint"):
        vaekit.load(path)


def test_missing_and_foreign_folders(tmp_path):
    with pytest.raises(VaekitError, match="does not exist"):
        vaekit.load(tmp_path / "nope")
    with pytest.raises(VaekitError, match="not a vaekit run folder"):
        vaekit.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(VaekitError, match="corrupt"):
        vaekit.load(tmp_path)


def test_checkpoint_holds_no_pickled_objects(trained_run):
    # weights_only=True admits only tensors and plain containers; it would refuse anything else
    ckpt = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)
    assert json.loads(ckpt["config"])["model"]["name"] == "mlp"


def test_weights_saved_before_a_rename_still_load(tmp_path):
    """A cvae saved by release 0.1 named its class means ``class_means``; they now live in the trained
    prior (``trained_prior.means``). Its safetensors file and its checkpoint's state both still load."""
    from safetensors.torch import load_file, save_file

    from vaekit.models import ConditionalVAE
    from vaekit.models.saving import CONFIG_KEY, save_model

    model = ConditionalVAE(image_shape=(1, 8, 8), latent_dim=3, hidden=(16,), num_classes=3)
    with torch.no_grad():
        model.trained_prior.means.copy_(torch.randn(3, 3))
    save_model(model, tmp_path / "new.safetensors")
    state = load_file(tmp_path / "new.safetensors")
    state["class_means"] = state.pop("trained_prior.means")  # the file as release 0.1 wrote it
    save_file(state, tmp_path / "old.safetensors", metadata={CONFIG_KEY: json.dumps(model.config)})
    old = vaekit.load(tmp_path / "old.safetensors")
    assert torch.equal(old.trained_prior.means, model.trained_prior.means)
    again = ConditionalVAE(image_shape=(1, 8, 8), latent_dim=3, hidden=(16,), num_classes=3)
    again.load_state_dict(dict(state))  # a checkpoint's "model" entry goes through load_state_dict
    assert torch.equal(again.trained_prior.means, model.trained_prior.means)
