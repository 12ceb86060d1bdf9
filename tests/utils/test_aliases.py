"""The old import paths of release 0.1 still work for one release, and say where each name lives now."""

import importlib
import warnings

import pytest

OLD_PATHS = {
    "vaekit.evaluate": ("evaluate_run", "iwae_nll", "elbo_terms", "latent_statistics", "format_result"),
    "vaekit.quality": ("sample_quality", "load_classifier", "frechet_distance"),
    "vaekit.compare": ("compare_runs",),
    "vaekit.disentanglement": ("mig", "factor_vae_score"),
    "vaekit.train_prior": ("fit_run_prior", "fit_mixture_prior", "train_prior"),
}


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_paths_forward_to_the_new_modules_with_a_warning(old):
    module = importlib.import_module(old)
    for name in OLD_PATHS[old]:
        with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to vaekit\\.") as caught:
            value = getattr(module, name)
        new_path = str(caught[0].message).split(" moved to ")[1].split(";")[0]
        new_module, _, new_name = new_path.rpartition(".")
        assert value is getattr(importlib.import_module(new_module), new_name)
        assert value.__module__ == new_module  # the module that defines it, not one that imports it


def test_from_import_works_and_unknown_names_are_attribute_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from vaekit.evaluate import evaluate_run  # noqa: F401
    import vaekit.evaluate

    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        vaekit.evaluate.nothing  # noqa: B018
    with pytest.raises(AttributeError):
        vaekit.evaluate._text  # noqa: B018  (private names were never API)
