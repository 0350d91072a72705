"""Compare tracked runs: a table and plots of an experiment's runs, of one sweep, or of a filter.

    python scripts/compare.py sweep=latest
    python scripts/compare.py experiment_name=fashion_mnist "filter=\"tags.model = 'mlp'\"" name=mlps

Writes runs.md, runs.csv and PNG plots to outputs/compare/<name>/ (see conf/compare.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import hydra
from omegaconf import DictConfig

import mgelab.config  # noqa: F401  (registers the resolvers conf/ uses)
from mgelab.report.compare import CompareSpec, gather, output_name, table_rows, to_markdown, write_csv
from mgelab.report.compare_plots import draw_all
from mgelab.tracking.store import TrackingStore
from mgelab.tracking.sweep import select_runs


def compare(cfg: DictConfig) -> Path:
    """Write the report; return its folder."""
    try:
        spec = CompareSpec(cfg.metric, cfg.mode, cfg.test_metric, cfg.loss_metric, cfg.max_curves, cfg.time_to)
    except ValueError as error:
        raise SystemExit(f"conf/compare.yaml: {error}") from None
    store = TrackingStore(cfg.tracking_uri)
    selection = select_runs(store, cfg.experiment_name, cfg.sweep, cfg.filter or "")
    if not selection.runs:
        chosen = f"experiment_name={cfg.experiment_name}, sweep={cfg.sweep}, filter={cfg.filter!r}"
        raise SystemExit(f"no runs selected ({chosen}) in {cfg.tracking_uri}")
    data = gather(store, selection.runs, spec)
    rows = table_rows(data, spec)
    out_dir = Path(cfg.output_root) / output_name(cfg.name, selection.label)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = to_markdown(rows, spec)
    files: List[Path] = [out_dir / "runs.md", write_csv(rows, spec, out_dir / "runs.csv")]
    files[0].write_text(table)
    files += draw_all(data, spec, out_dir, title=selection.label)
    print(table)
    if selection.parent is not None and cfg.log_to_parent:
        for path in files:
            store.log_artifact(selection.parent.run_id, path, "compare")
        print(f"logged to the sweep's parent run {selection.parent.run_id} (artifacts/compare)")
    print(f"{len(rows)} runs -> {out_dir}")
    return out_dir


@hydra.main(config_path="../conf", config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    compare(cfg)


if __name__ == "__main__":
    main()
