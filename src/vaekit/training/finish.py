"""The end of a run, after its last epoch: the model the folder keeps is evaluated on the test images
(eval.json), its test latents go to TensorBoard's projector, a Gaussian-latent model gets its fitted
prior (``training.priors``), and MLflow gets eval.json and the pictures (``training.tracking``). A
finished run whose model.safetensors was damaged or lost is finished again by ``train --resume``, which
rebuilds the file from the run's checkpoint (``rebuild_model``)."""

from __future__ import annotations

from typing import Any

from vaekit.data import binarize, unit_float
from vaekit.evaluation.likelihood import elbo_terms
from vaekit.evaluation.report import kl_collapse_warning
from vaekit.evaluation.runs import eval_record, write_eval
from vaekit.models.saving import save_model
from vaekit.training.priors import fit_prior_after_training
from vaekit.training.run_folder import RunDir
from vaekit.utils.atomic import write_json
from vaekit.utils.errors import VaekitError
from vaekit.utils.files import read_json, read_safetensors
from vaekit.utils.integrity import DamagedRecord

PRIOR_FIT_IMAGES = 60_000  # the fitted prior sees at most this many training images


def finish_run(trainer: Any) -> dict[str, Any]:
    """Rank 0's work after training a ``loop.Trainer`` (typed Any: loop.py imports this module); returns
    the test evaluation written to eval.json."""
    s = trainer.state
    trained_nothing = trainer.budget.start_epochs == trainer.epochs_done  # a finished run started again
    if trained_nothing and (fault := saved_model_fault(trainer.run_dir)) is not None:
        rebuild_model(trainer, fault)
    if trainer.stopped_early:
        trainer.log(
            f"early stopping: the validation loss has not improved for {s.epoch - s.best_epoch} epochs; "
            f"the run keeps the model of epoch {s.best_epoch} (val {s.best_loss:.2f})"
        )
    if trainer.config.early_stopping:  # evaluate the model the folder holds: the best, not the last
        state, _ = read_safetensors(trainer.run_dir.model)
        trainer.model.load_state_dict(state)
    result = evaluate_test(trainer)
    if trainer.tensorboard is not None:
        data, step = trainer.data, trainer.state.epoch * trainer.n_batches
        trainer.tensorboard.embedding(trainer.model, data.x_test, data.y_test, trainer.classes, step)
        trainer.tensorboard.close()
    if trainer.refits_prior:
        fit_prior(trainer)
    if trainer.mlflow is not None:  # last: the fitted prior's samples are among the pictures
        trainer.mlflow.finish(result, trainer.state.epoch)
    trainer.log(f"run saved in {trainer.run_dir.path}")
    return result


def evaluate_test(trainer: Any) -> dict[str, Any]:
    """The test split's -ELBO and its terms, merged into eval.json and printed."""
    config, data = trainer.config, trainer.data
    terms = elbo_terms(trainer.model, data.x_test, data.y_test, seed=config.seed, **trainer.eval_options)
    result = eval_record(terms, "test", len(data.x_test), trainer.state.epoch)
    if config.early_stopping:
        result["best_epoch"] = trainer.state.best_epoch
    write_eval(trainer.run_dir.eval, result, log=trainer.log)
    trainer.log(
        f"test loss {result['test_loss']:.2f} (recon {result['test_recon']:.2f} + "
        f"kl {result['test_kl']:.2f}) over {len(data.x_test)} images"
    )
    model = trainer.model
    if model.latent_space.gaussian:  # a vqvae's "kl" is its code prior's: no collapse to speak of
        learned = model.config.get("decoder_std") is None
        warning = kl_collapse_warning(result["test_kl"], model.likelihood, learned)
        if warning:
            trainer.log(warning)
    return result


def fit_prior(trainer: Any) -> None:
    """Fit the mixture prior to the training latents and save the run with it."""
    config = trainer.config
    # Up to PRIOR_FIT_IMAGES training images (a seeded choice beyond that): the mixture needs no more,
    # and a memory-mapped dataset is gathered into memory no larger than that.
    x, labels = trainer.data.sample_of_train(PRIOR_FIT_IMAGES, config.seed)
    if config.binarize == "dynamic":
        x = binarize(unit_float(x), "train")
    fit_prior_after_training(
        trainer.run_dir.path, trainer.model, trainer.run_config(), x, labels, trainer.num_classes,
        config.prior_components, config.seed, trainer.log, (trainer.dataset, validation_images(trainer)),
    )  # fmt: skip


def validation_images(trainer: Any) -> Any:
    """The validation images as they are (uint8, not binarized): what samples are measured against."""
    return trainer.dataset.train.images[trainer.data.val_rows.cpu()]


def end_to_redo(run: RunDir, epochs: int) -> str | None:
    """Why a run whose checkpoint has trained all its ``epochs`` must be finished again (``finish_run``,
    by ``train --resume``), or None: its model.safetensors cannot be read, or the end of training did
    not run for its last epoch (stopped between the last checkpoint and eval.json, which records the
    epochs it evaluated)."""
    if saved_model_fault(run) is not None:
        return "its model.safetensors is rebuilt"
    try:
        evaluated = read_json(run.eval).get("epochs_trained")
    except (FileNotFoundError, VaekitError):
        evaluated = None
    return None if evaluated == epochs else "its end of training (eval.json, the fitted prior) is run again"


def saved_model_fault(run: RunDir) -> str | None:
    """Why the run's model.safetensors cannot be read (damaged, cut short, gone), or None if it can. A
    damaged checksums.json is the record's fault, not the file's: None (reading the run says so)."""
    try:
        read_safetensors(run.model)
    except DamagedRecord:
        return None
    except VaekitError as exc:
        return str(exc)
    return None


def rebuild_model(trainer: Any, fault: str) -> None:
    """model.safetensors and config.json rewritten from the model the checkpoint restored (with --ema,
    its average, already in the model), as the run's last epoch wrote them; ``finish_run`` then refits
    the prior and rewrites eval.json as the end of training did."""
    s = trainer.state
    if trainer.config.early_stopping and s.best_epoch != s.epoch:
        raise VaekitError(
            f"{fault}; it held epoch {s.best_epoch}'s weights (--early-stopping), which no checkpoint "
            "keeps: train the run again with --overwrite"
        )
    trainer.log(f"note: {fault}; rebuilt from the checkpoint of epoch {s.epoch}")
    save_model(trainer.model, trainer.run_dir.model)
    write_json(trainer.run_dir.config, trainer.run_config())
