"""The model registry: plugins by decorator, by entry point and by VAEKIT_PLUGINS, their provenance in
saved configs, and each bad plugin a one-line error."""

from __future__ import annotations

import shutil
import sys
import textwrap

import pytest
import torch
from torch import nn

from tests.conftest import error_of, quiet_trainer, tiny_config
from vaekit.cli import main
from vaekit.models import (
    MODELS,
    VAE,
    GaussianVAE,
    NetworkVAE,
    build_model,
    model_class,
    model_names,
    register_model,
    unregister_model,
)
from vaekit.models.registry import BUILT_IN
from vaekit.training import TrainConfig
from vaekit.utils.errors import VaekitError


@pytest.fixture(autouse=True)
def clean_registry():
    """Whatever a test registers is gone after it (other tests iterate over MODELS)."""
    before = dict(MODELS)
    yield
    MODELS.clear()
    MODELS.update(before)


def tiny_network_vae(name: str = "tiny", fail: bool = False, wrong_encoder: bool = False) -> type:
    class Tiny(NetworkVAE):
        def __init__(self, image_shape=(1, 8, 8), latent_dim=2, depth=1, **options):
            super().__init__(image_shape=list(image_shape), latent_dim=latent_dim, depth=depth, **options)
            if fail:
                raise RuntimeError("out of cheese")
            pixels = int(torch.tensor(image_shape).prod())
            out = latent_dim if wrong_encoder else 2 * latent_dim
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 16), nn.ReLU(), nn.Linear(16, out))
            self.decoder = nn.Sequential(nn.Linear(latent_dim, pixels), nn.Unflatten(1, tuple(image_shape)))

    Tiny.name = name
    return Tiny


def test_a_decorated_network_vae_trains_saves_and_loads(tmp_path):
    cls = register_model(tiny_network_vae())
    assert model_class("tiny") is cls and "tiny" in model_names()
    out = tmp_path / "run"
    quiet_trainer(tiny_config(model="tiny", hidden=None, model_options={"depth": 3}), out).run()
    import vaekit

    model = vaekit.load(out)
    assert isinstance(model, cls) and model.config["depth"] == 3
    assert model.config["plugin"]["module"] == cls.__module__
    x = torch.rand(4, 1, 8, 8)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (4, 2)
    assert model.decode(mean).shape == (4, 1, 8, 8)


def test_shared_settings_apply_where_the_constructor_takes_them():
    register_model(tiny_network_vae())
    config = TrainConfig(dataset="digits", model="tiny", likelihood="gaussian", latent_dim=3)
    config.validate()  # likelihood and latent_dim pass through **options to the base
    message = error_of(TrainConfig(dataset="digits", model="tiny", hidden=[8]).validate)
    assert message == "--hidden does not apply to model tiny"
    message = error_of(TrainConfig(dataset="digits", model="tiny", model_options={"colour": 1}).validate)
    assert message == "model tiny takes no option 'colour' (its own options: depth)"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: object, "is not a model class"),
        (lambda: lambda: None, "is not a model class"),
        (lambda: GaussianVAE, "is not a model class"),
        (lambda: type("NoName", (NetworkVAE,), {}), "needs a class attribute name"),
        (lambda: type("Upper", (NetworkVAE,), {"name": "Bad Name"}), "needs a class attribute name"),
        (lambda: type("Bare", (GaussianVAE,), {"name": "bare"}), "does not define encode, decode_logits"),
        (lambda: type("Odd", (VAE,), {"name": "odd"}), "does not define encode, decode_logits, loss, sample"),
        (lambda: tiny_network_vae("mlp"), "is a built-in model's: pick another"),
    ],
)
def test_bad_plugins_are_one_line_errors(make, expected):
    assert expected in error_of(register_model, make())
    assert set(MODELS) == set(BUILT_IN)


def test_a_name_held_by_another_plugin_is_refused_and_the_same_class_redefined_replaces_it():
    first = register_model(tiny_network_vae())
    again = tiny_network_vae()  # the same module and qualified name: a notebook cell run twice
    assert register_model(again) is again and MODELS["tiny"] is again
    other = type("Other", (NetworkVAE,), {"name": "tiny", "encode": first.encode})
    assert "is taken by" in error_of(register_model, other)
    unregister_model("tiny")
    assert "tiny" not in MODELS
    assert "cannot be unregistered" in error_of(unregister_model, "mlp")


def test_a_plugin_that_raises_or_does_not_fit_its_images_is_one_line_when_built():
    register_model(tiny_network_vae("boom", fail=True))
    assert error_of(build_model, {"name": "boom"}).endswith("failed to build: RuntimeError: out of cheese")
    register_model(tiny_network_vae("skew", wrong_encoder=True))
    assert "its encoder gives [2, 2], expected [2, 4]" in error_of(build_model, {"name": "skew"})
    register_model(tiny_network_vae("small"))
    message = error_of(build_model, {"name": "small", "image_shape": [1, 8, 8], "latent_dim": "x"})
    assert message == "invalid config for model 'small': invalid literal for int() with base 10: 'x'"
    message = error_of(build_model, {"name": "small", "image_shape": [1, 8, 8], "depth": 1, "colour": 2})
    assert message == "invalid config for model 'small': unexpected colour"


def test_a_missing_plugin_names_its_package_or_module():
    config = {"name": "gone", "plugin": {"module": "gone_mod", "package": "vaekit-gone", "version": "1.2"}}
    assert error_of(build_model, config) == (
        "model 'gone' is not installed: it came from the package vaekit-gone 1.2 (module gone_mod); "
        "pip install vaekit-gone"
    )
    local = {"name": "gone", "plugin": {"module": "my_models"}}
    assert error_of(build_model, local).endswith("(module my_models); name my_models in VAEKIT_PLUGINS")
    assert error_of(build_model, {"name": "nothing"}).startswith("unknown model 'nothing'; choose from")


def write_distribution(site, module_source: str, entry: str, name: str = "fake") -> None:
    """An installed distribution as pip leaves it: a module and a dist-info with an entry point."""
    (site / f"{name}_plugin.py").write_text(textwrap.dedent(module_source))
    info = site / f"{name}_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[vaekit.models]\n{entry}\n")
    (info / "top_level.txt").write_text(f"{name}_plugin\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m.endswith("_plugin")]:
        sys.modules.pop(name)


def test_an_entry_point_is_loaded_when_its_name_is_asked_for(site):
    source = """
        from torch import nn
        from vaekit.models import NetworkVAE

        class Lines(NetworkVAE):  # no decorator: the entry point registers it
            name = "lines"
            def __init__(self, image_shape=(1, 8, 8), latent_dim=2, **options):
                super().__init__(image_shape=list(image_shape), latent_dim=latent_dim, **options)
                self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 2 * latent_dim))
                self.decoder = nn.Sequential(nn.Linear(latent_dim, 64), nn.Unflatten(1, (1, 8, 8)))
    """
    write_distribution(site, source, "lines = fake_plugin:Lines")
    assert "lines" in model_names() and "lines" not in MODELS  # listed, not imported
    model = build_model({"name": "lines", "latent_dim": 3})
    assert model.config["plugin"] == {"module": "fake_plugin", "package": "fake-plugin", "version": "0.1"}


@pytest.mark.parametrize(
    ("source", "entry", "expected"),
    [
        ("raise ImportError('no such thing')\n", "broken = fake_plugin:X", "ImportError: no such thing"),
        ("def make():\n    return 1\n", "notaclass = fake_plugin:make", "registers no model named"),
        ("class NotVAE:\n    name = 'plain'\n", "plain = fake_plugin:NotVAE", "is not a model class"),
    ],
)
def test_a_broken_entry_point_is_a_one_line_error_only_when_used(site, source, entry, expected, capsys):
    write_distribution(site, source, entry)
    name = entry.split(" ")[0]
    assert name in model_names()
    assert model_class("mlp") is MODELS["mlp"]  # the others are unaffected
    message = error_of(model_class, name)
    assert expected in message and f"plugin {name!r}" in message and "package fake-plugin" in message
    assert main(["train", "--model", name, "--dataset", "digits", "--out", str(site / "run")]) == 1
    assert expected in capsys.readouterr().err and not (site / "run").exists()


def test_vaekit_plugins_imports_a_module_that_is_not_a_package(site, monkeypatch):
    (site / "my_models.py").write_text(
        "from vaekit.models import register_model\n"
        "from tests.models.test_registry import tiny_network_vae\n"
        "register_model(tiny_network_vae('mine'))\n"
    )
    monkeypatch.setenv("VAEKIT_PLUGINS", "my_models")
    monkeypatch.setattr("vaekit.utils.packages._imported_env_modules", set())
    try:
        assert model_class("mine").name == "mine"
        monkeypatch.setenv("VAEKIT_PLUGINS", "no_such_module_here")
        message = error_of(model_names)
        assert message.startswith("cannot import 'no_such_module_here' named in VAEKIT_PLUGINS")
    finally:
        sys.modules.pop("my_models", None)


def test_model_options_come_from_a_config_file_and_cannot_change_on_resume(tmp_path):
    register_model(tiny_network_vae())
    config = tmp_path / "c.toml"
    config.write_text(
        '[train]\ndataset = "digits"\nmodel = "tiny"\nepochs = 1\nmodel_options = { depth = 2 }\n'
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--no-progress", "--out", str(out)]) == 0
    import json

    assert json.loads((out / "config.json").read_text())["model"]["depth"] == 2
    with pytest.raises(VaekitError, match="cannot change on --resume"):
        from vaekit.training import resumed_config

        resumed_config(out, model_options={"depth": 3})
    from vaekit.training.config_files import config_toml, read_config_file

    again = tmp_path / "again.toml"
    again.write_text(config_toml(TrainConfig(dataset="digits", model="tiny", model_options={"depth": 2})))
    assert read_config_file(again)["model_options"] == {"depth": 2}


# ------------------------------------------------------------------ found by a new user (issue 34)
NAMED_PLUGIN = """
    from torch import nn
    from vaekit.models import NetworkVAE

    class GConv(NetworkVAE):
        name = "gconv"
        def __init__(self, image_shape=(1, 8, 8), latent_dim=2, depth: int = 1, **options):
            super().__init__(image_shape=list(image_shape), latent_dim=latent_dim, depth=depth, **options)
            hidden = nn.Linear(64, depth * 4)
            self.encoder = nn.Sequential(nn.Flatten(), hidden, nn.Linear(depth * 4, 2 * latent_dim))
            self.decoder = nn.Sequential(nn.Linear(latent_dim, 64), nn.Unflatten(1, (1, 8, 8)))
"""


def test_a_model_name_claimed_by_two_packages_is_one_line_naming_both(site, capsys):
    write_distribution(site, NAMED_PLUGIN, "gconv = first_plugin:GConv", name="first")
    write_distribution(site, NAMED_PLUGIN, "gconv = second_plugin:GConv", name="second")
    message = error_of(model_class, "gconv")
    assert "'gconv' is claimed twice" in message
    assert "first-plugin (first_plugin:GConv)" in message and "second-plugin (second_plugin:GConv)" in message
    assert main(["train", "--model", "gconv", "--dataset", "digits", "--out", str(site / "run")]) == 1
    assert "claimed twice" in capsys.readouterr().err and not (site / "run").exists()


def test_a_decorated_class_and_an_installed_package_of_one_name_are_one_line(site):
    write_distribution(site, NAMED_PLUGIN, "gconv = first_plugin:GConv", name="first")
    register_model(tiny_network_vae("gconv"))  # another class of the same name, in this test module
    message = error_of(model_class, "gconv")
    assert "registered by decorator" in message and "first-plugin (first_plugin:GConv)" in message


def test_an_installed_package_that_claims_a_built_in_name_is_named(site):
    source = NAMED_PLUGIN.replace('"gconv"', '"mlp"')
    write_distribution(site, source, "mlp = first_plugin:GConv", name="first")
    message = error_of(model_class, "mlp")
    assert "vaekit's built-in model" in message and "first-plugin" in message


def test_the_package_a_run_used_is_recorded_and_its_own_import_is_one_claim(site, tmp_path):
    write_distribution(site, NAMED_PLUGIN, "gconv = first_plugin:GConv", name="first")
    import first_plugin  # noqa: F401  (imported, not decorated: the entry point registers it)

    config = tiny_config(model="gconv", hidden=None, latent_dim=2, epochs=1)
    quiet_trainer(config, tmp_path / "run").run()
    import json

    stored = json.loads((tmp_path / "run" / "config.json").read_text())["model"]["plugin"]
    assert stored == {"module": "first_plugin", "package": "first-plugin", "version": "0.1"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depth": "abc"}, "model option 'depth' of gconv must be an integer, got 'abc'"),
        ({"depth": 2.5}, "model option 'depth' of gconv must be an integer, got 2.5"),
        ({"depth": [1]}, "model option 'depth' of gconv must be an integer, got [1]"),
    ],
)
def test_a_model_options_type_is_checked_naming_the_option(site, options, message):
    write_distribution(site, NAMED_PLUGIN, "gconv = first_plugin:GConv", name="first")
    assert error_of(tiny_config(model="gconv", hidden=None, model_options=options).validate) == message


def test_a_bad_model_option_from_a_file_or_the_flag_names_the_option_and_the_file(site, capsys):
    write_distribution(site, NAMED_PLUGIN, "gconv = first_plugin:GConv", name="first")
    config = site / "exp.toml"
    config.write_text('[train]\ndataset = "digits"\nmodel = "gconv"\nmodel_options = { depth = "two" }\n')
    assert main(["train", "--config", str(config), "--out", str(site / "a")]) == 1
    assert f"{config}: model option 'depth' of gconv must be an integer, got 'two'" in capsys.readouterr().err
    flags = ["train", "--model", "gconv", "--dataset", "digits", "--model-option", "depth=abc"]
    assert main([*flags, "--out", str(site / "b")]) == 1
    assert "model option 'depth' of gconv must be an integer, got 'abc'" in capsys.readouterr().err
    assert main([*flags[:-1], "depth=-1", "--out", str(site / "c"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()  # a value only the model can refuse: the error names the option
    assert err.endswith("(its model options: depth=-1)") and "\n" not in err
    assert not any((site / name).exists() for name in "abc")


def test_a_resume_that_changes_a_model_option_names_the_option_as_typed(site, capsys):
    write_distribution(site, NAMED_PLUGIN, "gconv = first_plugin:GConv", name="first")
    run = site / "run"
    flags = ["train", "--model", "gconv", "--dataset", "digits", "--epochs", "1", "--no-progress"]
    assert main([*flags, "--model-option", "depth=2", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2", "--model-option", "depth=3"]) == 1
    err = capsys.readouterr().err.strip()  # it said --model-options, a flag no command has
    assert err.startswith("vaekit train: error: --model-option {'depth': 3} differs from the run's")


def test_a_plugins_own_default_likelihood_counts_for_the_option_checks():
    class Grey(tiny_network_vae("greyish")):
        def __init__(self, image_shape=(1, 8, 8), latent_dim=2, likelihood: str = "gaussian", **options):
            super().__init__(image_shape=image_shape, latent_dim=latent_dim, likelihood=likelihood, **options)

    Grey.name = "greyish"
    register_model(Grey)
    tiny_config(model="greyish", hidden=None, decoder_std=0.2).validate()  # no --likelihood needed
    with pytest.raises(VaekitError, match="--decoder-std applies to --likelihood gaussian only"):
        tiny_config(model="greyish", hidden=None, likelihood="bernoulli", decoder_std=0.2).validate()


def test_a_missing_plugin_on_resume_and_on_a_run_config_names_its_package(site, tmp_path, capsys):
    write_distribution(site, NAMED_PLUGIN, "gconv = first_plugin:GConv", name="first")
    out = tmp_path / "run"
    quiet_trainer(tiny_config(model="gconv", hidden=None, epochs=1), out).run()
    shutil.rmtree(site / "first_plugin-0.1.dist-info")  # uninstalled: pip removes the whole dist-info
    MODELS.pop("gconv")
    sys.modules.pop("first_plugin")
    hint = "model 'gconv' is not installed: it came from the package first-plugin 0.1 (module first_plugin); "
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 1
    assert hint + "pip install first-plugin" in capsys.readouterr().err
    assert main(["train", "--config", str(out / "config.json"), "--out", str(tmp_path / "again")]) == 1
    assert hint + "pip install first-plugin" in capsys.readouterr().err
