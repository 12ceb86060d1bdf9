"""vaekit's Adam against torch.optim.Adam: the same numbers, the same state dict, and no torch._dynamo;
a skipped step decided on the device (issue 33) changes nothing."""

import math
import subprocess
import sys

import pytest
import torch

from vaekit.models import build_model
from vaekit.training import Adam
from vaekit.training.optim import Adamax


def two_models(name="mlp"):
    config = {"name": name, "image_shape": [1, 8, 8], "latent_dim": 2}
    if name == "mlp":
        config["hidden"] = [16]
    else:
        config["channels"] = [4, 8]
    torch.manual_seed(0)
    a = build_model(config)
    b = build_model(config)
    b.load_state_dict(a.state_dict())
    return a, b


def train_steps(model, optimizer, steps, first=0):
    for i in range(first, first + steps):
        x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(i))
        torch.manual_seed(100 + i)
        optimizer.zero_grad(set_to_none=True)
        model.loss(x).objective.backward()
        optimizer.step()


def assert_same_weights(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_the_same_numbers_as_torch_fused_adam(name):
    a, b = two_models(name)
    if name == "conv":  # as the Trainer holds conv weights
        a.to(memory_format=torch.channels_last)
        b.to(memory_format=torch.channels_last)
    initial = [p.clone() for p in a.parameters()]
    ours, theirs = Adam(a.parameters(), lr=3e-3), torch.optim.Adam(b.parameters(), lr=3e-3, fused=True)
    train_steps(a, ours, 6)
    train_steps(b, theirs, 6)
    assert_same_weights(a, b)
    assert not any(torch.equal(p, q) for p, q in zip(initial, a.parameters(), strict=True))  # it trained


def test_a_parameter_without_a_gradient_is_left_alone_and_gets_no_state():
    a, _ = two_models()
    frozen = next(a.decoder.parameters())
    frozen.requires_grad_(False)
    kept = frozen.clone()
    optimizer = Adam(a.parameters())
    train_steps(a, optimizer, 2)
    assert torch.equal(frozen, kept) and frozen not in optimizer.state
    assert len(optimizer.state) == len(list(a.parameters())) - 1


def test_state_dicts_move_between_torch_adam_and_ours_either_way():
    a, b = two_models()
    ours, theirs = Adam(a.parameters()), torch.optim.Adam(b.parameters(), fused=True)
    train_steps(a, ours, 3)
    train_steps(b, theirs, 3)
    state = ours.state_dict()
    assert state.keys() == theirs.state_dict().keys()
    assert state["param_groups"][0].keys() == theirs.state_dict()["param_groups"][0].keys()
    # swap the optimizers' states, then carry on: still step for step the same
    c, d = two_models()
    c.load_state_dict(a.state_dict())
    d.load_state_dict(b.state_dict())
    ours_again, theirs_again = Adam(c.parameters(), lr=0.5), torch.optim.Adam(d.parameters(), fused=True)
    ours_again.load_state_dict(theirs.state_dict())
    theirs_again.load_state_dict(state)
    assert ours_again.param_groups[0]["lr"] == 1e-3  # the saved learning rate, as torch does
    train_steps(c, ours_again, 3, first=3)
    train_steps(d, theirs_again, 3, first=3)
    assert_same_weights(c, d)


def test_a_state_for_other_parameters_is_refused():
    a, _ = two_models()
    fewer = Adam(list(a.parameters())[:-1])
    other = build_model({"name": "mlp", "image_shape": [1, 8, 8], "latent_dim": 3, "hidden": [16]})
    wider = Adam(other.parameters())
    train_steps(other, wider, 1)
    for state in (fewer.state_dict(), wider.state_dict()):
        with pytest.raises(ValueError, match="another set of parameters"):
            Adam(a.parameters()).load_state_dict(state)
    with pytest.raises(ValueError, match="empty"):
        Adam([])


def test_training_with_it_does_not_import_torch_dynamo():
    """The reason it exists: torch.optim imports torch._dynamo (about as slow as importing torch)."""
    code = (
        "import sys, torch\n"
        "from vaekit.models import build_model\n"
        "from vaekit.training import Adam\n"
        "m = build_model({'name': 'mlp', 'image_shape': [1, 8, 8]})\n"
        "o = Adam(m.parameters())\n"
        "m.loss(torch.rand(4, 1, 8, 8)).objective.backward()\n"
        "o.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def steps_with_one_skipped(model, optimizer, skip_by, poisoned=2, steps=5):
    """Train ``steps`` steps whose step ``poisoned`` has NaN gradients: ``skip_by="host"`` leaves its
    update out, as a loop reading the loss would; ``"flag"`` hands the optimizer the skip as a tensor."""
    for i in range(steps):
        x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(i))
        torch.manual_seed(100 + i)
        optimizer.zero_grad(set_to_none=True)
        objective = model.loss(x).objective * (math.nan if i == poisoned else 1.0)
        if skip_by == "host" and i == poisoned:
            continue
        objective.backward()
        optimizer.step(~torch.isfinite(objective.detach()) if skip_by == "flag" else None)


@pytest.mark.parametrize("kind", ["adam", "adam foreach", "adamax"])
@pytest.mark.parametrize("on_device", [False, True])
def test_a_skip_flag_leaves_weights_and_state_as_if_the_step_never_came(kind, on_device):
    """Issue 33: the skip is decided on the device. The fused kernel takes it (Adam); foreach Adam and
    Adamax undo a masked update (``on_device``, as on an accelerator) or read the flag (a CPU): either
    way the weights and the optimizer's state are bit for bit those of a run that left the step out."""
    a, b = two_models()
    make = Adamax if kind == "adamax" else Adam
    ours, reference = make(a.parameters(), lr=5e-3), make(b.parameters(), lr=5e-3)
    for optimizer in (ours, reference):
        optimizer.fused = kind == "adam"
        optimizer.decides_on_device = on_device
    steps_with_one_skipped(a, ours, "flag")
    steps_with_one_skipped(b, reference, "host")
    assert_same_weights(a, b)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        for name, value in ours.state[p].items():
            assert torch.equal(value, reference.state[q][name]), name
    assert int(ours.state[next(a.parameters())]["step"]) == 4  # 5 steps, one skipped
