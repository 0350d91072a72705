"""Export a trained model to a MegEngine inference graph (.mge) that is checked before it is kept.

    python scripts/export.py run_id=<MLflow run id>
    python scripts/export.py checkpoint=outputs/runs/<date>_<time>_cnn/checkpoints

Traces the eval-mode model with jit.trace(symbolic=True, capture_as_const=True), dumps the graph,
reloads it with MegEngine's graph loader and compares its outputs with the eager model's on seeded
batches; only then is <name>.mge (with <name>.json: input name, shape, dtype, classes) in place.
Run it with `load_network_and_run` or `megengine.utils.comp_graph_tools.GraphInference`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

import hydra
from omegaconf import DictConfig

import mgelab.config  # noqa: F401  (registers the resolvers conf/ uses)
from mgelab.deploy import ExportError, ExportOptions, ExportResult, GraphOptions
from mgelab.deploy.trained import ExportSource, export_trained
from mgelab.run.artifacts import log_export_to_run, temporary_best_checkpoint
from mgelab.serving.loading import TrainedModel, one_source


def options_from(cfg: DictConfig) -> ExportOptions:
    graph = GraphOptions(
        optimize_for_inference=bool(cfg.optimize_for_inference),
        fuse_conv_bias_nonlinearity=bool(cfg.fuse_conv_bias_nonlinearity),
    )
    return ExportOptions(int(cfg.batch_size), float(cfg.rtol), float(cfg.atol), int(cfg.seed), graph)


def load_source(cfg: DictConfig) -> Tuple[ExportSource, TrainedModel]:
    """The model of ``checkpoint=`` or of ``run_id=`` (exactly one), and how the export names it."""
    if one_source(checkpoint=cfg.checkpoint, run_id=cfg.run_id) == "checkpoint":
        source = ExportSource(str(cfg.checkpoint))
        return source, source.load()
    run_id = str(cfg.run_id)
    # The downloaded checkpoint is only needed until the model is built.
    with temporary_best_checkpoint(run_id, cfg.tracking_uri) as checkpoint:
        source = ExportSource(str(checkpoint), {"run_id": run_id, "tracking_uri": cfg.tracking_uri}, run_id[:8])
        return source, source.load()


def export(cfg: DictConfig) -> ExportResult:
    source, trained = load_source(cfg)
    path = Path(cfg.output_dir) / f"{cfg.name or source.default_name(trained)}.mge"
    result = export_trained(trained, path, options_from(cfg), bool(cfg.raw_input), source.describe())
    shape = "x".join(map(str, trained.input_shape))
    dtype = trained.raw_dtype if cfg.raw_input else "float32 (normalised)"
    print(
        f"wrote {result.path} ({result.dump.bytes:,} bytes, {result.dump.operators} operators), input "
        f"'{result.dump.inputs[0]}' N x {shape} {dtype}; reloaded and checked at batch sizes "
        f"{list(result.checked_batch_sizes)}: max |graph - eager| {result.max_abs_error:.3g}"
    )
    print(f"description: {result.meta_path}")
    if cfg.run_id and cfg.log_to_run:
        log_export_to_run(result, str(cfg.run_id), cfg.tracking_uri)
        print(f"logged to run {cfg.run_id} (artifacts export/)")
    return result


@hydra.main(config_path="../conf", config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # MLflow draws a progress bar for the two checkpoint files it downloads; the export's own lines suffice.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        export(cfg)
    except (ExportError, ValueError, FileNotFoundError, LookupError) as exc:
        raise SystemExit(f"export failed: {exc}") from exc


if __name__ == "__main__":
    main()
