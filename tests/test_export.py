"""Export to a .mge inference graph: reloaded outputs equal the eager model for every registered
model (fresh and briefly trained, both conv impls), failures leave no file, trained checkpoints and
tracked runs export end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

import megengine as mge
import megengine.functional as F
import megengine.module as M
import megengine.optimizer as optim
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from megengine.autodiff import GradManager

from mgelab.data.synthetic import SyntheticImages
from mgelab.deploy import ExportError, ExportOptions, InferenceGraph, Normalization, export_model
from mgelab.deploy.trained import ExportSource, export_trained
from mgelab.models import create_model, list_models, model_spec
from mgelab.nn import Conv2d
from mgelab.run.artifacts import BEST_CHECKPOINT_ARTIFACT
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from recording_logger import RecordingLogger
from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ExportOptions(batch_size=4)


def build(name: str, conv_impl: Optional[str] = None) -> M.Module:
    spec = model_spec(name)
    kwargs = {"conv_impl": conv_impl} if conv_impl else {}
    return create_model(name, spec.example_input_shape, 3, task=spec.tasks[0], **kwargs)


def has_conv(name: str) -> bool:
    return any(isinstance(m, Conv2d) for m in build(name).modules())


# From the registry at collection: a new model is covered, fresh convolutional ones under both conv
# impls (the impl only changes the backward pass: trained ones use the default).
CASES = [
    (name, impl, False) for name in list_models() for impl in (("fast", "native") if has_conv(name) else (None,))
] + [(name, None, True) for name in list_models()]


def case_id(name: str, impl: Optional[str], trained: bool) -> str:
    return "-".join([name] + ([impl] if impl else []) + (["trained"] if trained else ["fresh"]))


def close_to_scale(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """The export's criterion: max |diff| within atol + rtol * the outputs' largest magnitude."""
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= atol + rtol * np.max(np.abs(want))


def train_briefly(model: M.Module, name: str, steps: int = 2) -> None:
    """A few SGD steps on random data: weights and BatchNorm statistics move off their init."""
    spec = model_spec(name)
    rng = np.random.default_rng(1)
    gm = GradManager().attach(model.parameters())
    opt = optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        x = mge.tensor(rng.standard_normal((4, *spec.example_input_shape)).astype("float32"))
        with gm:
            out = model(x)
            if spec.tasks[0] == "regression":
                loss = F.nn.square_loss(out, mge.tensor(np.zeros(out.shape, "float32")))
            else:
                loss = F.nn.cross_entropy(out, mge.tensor(np.arange(4, dtype="int32") % 3))
            gm.backward(loss)
        opt.step().clear_grad()


def files_in(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name,impl,trained", CASES, ids=[case_id(*case) for case in CASES])
def test_reloaded_graph_equals_the_eager_model(tmp_path, name, impl, trained):
    seed_everything(0)
    model = build(name, impl)
    if trained:
        train_briefly(model, name)
    shape = model_spec(name).example_input_shape
    model.train()
    result = export_model(model, shape, tmp_path / f"{name}.mge", options=OPTIONS)
    assert result.checked_batch_sizes == (4, 1)
    assert files_in(tmp_path) == [f"{name}.json", f"{name}.mge"]
    assert model.training  # export traced in eval mode and gave the training mode back
    # A fresh load, a batch size never traced, against the eval-mode model.
    x = np.random.default_rng(7).standard_normal((5, *shape)).astype("float32")
    model.eval()
    want = model(mge.tensor(x)).numpy()
    close_to_scale(InferenceGraph(result.path).run(x), want)


def test_graph_with_normalisation_takes_raw_pixels(tmp_path):
    model = build("cnn")
    # Pixels to [0, 1], minus 0.5, over 0.3: the data module's affine map for one grey channel.
    scale, shift = np.full((1, 1, 1, 1), 1 / (255 * 0.3), "float32"), np.full((1, 1, 1, 1), -0.5 / 0.3, "float32")
    norm = Normalization(scale, shift)
    result = export_model(model, (1, 8, 8), tmp_path / "raw.mge", normalization=norm, raw_dtype="uint8",
                          options=OPTIONS)
    pixels = np.random.default_rng(3).integers(0, 256, size=(6, 1, 8, 8), dtype=np.uint8)
    model.eval()
    want = model(mge.tensor(norm.apply(pixels))).numpy()
    np.testing.assert_allclose(InferenceGraph(result.path).run(pixels), want, rtol=1e-5, atol=1e-5)


class PythonSideNoise(M.Module):
    """Draws its noise in numpy: a trace freezes one draw as a constant, so the graph differs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = M.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) + mge.tensor(np.random.rand(1, 2).astype("float32"))


class NotTraceable(M.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = M.Linear(4, 2)

    def forward(self, x):
        return mge.tensor(self.fc(x).numpy() * 2)  # reads a value back: no symbolic graph can


@pytest.mark.parametrize("model,match", [(PythonSideNoise(), "differs from the eager model"),
                                         (NotTraceable(), "tracing, dumping or reloading")])
def test_a_failed_export_leaves_no_file(tmp_path, model, match):
    (tmp_path / "keep.txt").write_text("unrelated")
    with pytest.raises(ExportError, match=match) as info:
        export_model(model, (4,), tmp_path / "bad.mge", options=OPTIONS)
    assert "bad.mge not written" in str(info.value)
    assert files_in(tmp_path) == ["keep.txt"]  # no .mge, no .partial, no .json


def test_export_path_must_end_in_mge(tmp_path):
    with pytest.raises(ExportError, match="must end in .mge"):
        export_model(build("mlp"), model_spec("mlp").example_input_shape, tmp_path / "graph.bin")


# --- from what the trainer writes ---------------------------------------------------------------
MODEL_CONFIG = {"_target_": "mgelab.models.create_model", "name": "cnn", "channels": [4, 8], "hidden_size": 16}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A CNN trained for one epoch on small synthetic images; its checkpoints and data."""
    tmp = tmp_path_factory.mktemp("trained")
    seed_everything(0)
    data = SyntheticImages(noise=90.0, batch_size=32, val_size=64, seed=3)
    kwargs = {k: v for k, v in MODEL_CONFIG.items() if k not in ("_target_", "name")}
    model = create_model("cnn", data.input_shape, data.num_outputs, **kwargs)
    trainer = Trainer(max_epochs=1, progress_bar=False, checkpoint_dir=str(tmp / "checkpoints"))
    result = trainer.fit(model, data, OptimizerFactory(name="sgd", lr=0.05), RecordingLogger(),
                         run_meta={"config": {"model": MODEL_CONFIG}})
    return tmp / "checkpoints", Path(result.best_checkpoint), data


@pytest.mark.parametrize("raw_input", [True, False])
def test_export_from_a_trainer_checkpoint(tmp_path, trained_run, raw_input):
    checkpoints, _, data = trained_run
    source = ExportSource(checkpoint=str(checkpoints))
    trained = source.load()
    result = export_trained(trained, tmp_path / "cnn.mge", OPTIONS, raw_input=raw_input, source=source.describe())
    pixels = data.splits["test"].inputs[:16]
    graph = InferenceGraph(result.path)
    got = graph.run(pixels) if raw_input else graph.run(trained.prepare(pixels))
    np.testing.assert_allclose(got, trained.predict_raw(pixels), rtol=1e-5, atol=1e-5)
    meta = json.loads(result.meta_path.read_text())
    assert meta["input"] == {"name": "data", "shape": [-1, 1, 8, 8], "dtype": "uint8" if raw_input else "float32"}
    assert meta["class_names"] == data.class_names and meta["normalization_in_graph"] == raw_input
    assert ("normalization" in meta) != raw_input


def test_a_source_is_a_local_checkpoint_named_by_its_origin(trained_run):
    _, best, _ = trained_run
    with pytest.raises(ValueError, match="give the checkpoint to export"):
        ExportSource("")
    local = ExportSource(str(best))
    trained = local.load()
    assert local.describe() == {"checkpoint": str(best.resolve())} and local.default_name(trained) == f"cnn_{best.name}"
    origin = {"run_id": "0123abcd99", "tracking_uri": "sqlite:///x.db"}
    fetched = ExportSource(str(best), origin=origin, label="0123abcd")
    assert fetched.describe()["run_id"] == "0123abcd99" and fetched.default_name(trained) == "cnn_0123abcd"


def run_export(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MEGENGINE_LOGGING_LEVEL"] = "ERROR"
    cmd = [sys.executable, str(ROOT / "scripts" / "export.py"), *args, f"paths.output_dir={tmp_path}"]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_export_script_from_a_checkpoint(tmp_path, trained_run):
    checkpoints, best, data = trained_run
    proc = run_export(tmp_path, f"checkpoint={checkpoints}", "batch_size=4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = tmp_path / "export" / f"cnn_{best.name}.mge"
    assert f"wrote {path}" in proc.stdout and "uint8" in proc.stdout
    pixels = data.splits["test"].inputs[:8]
    want = ExportSource(checkpoint=str(best)).load().predict_raw(pixels)
    np.testing.assert_allclose(InferenceGraph(path).run(pixels), want, rtol=1e-5, atol=1e-5)


def export_script_in_process(overrides: List[str]):
    """scripts/export.py's ``export`` on its composed config, without a subprocess (faster)."""
    script = load_script("export")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="export", overrides=overrides)
    GlobalHydra.instance().clear()
    return script.export(cfg)


def test_the_script_takes_exactly_one_source_and_a_run_needs_its_store(tmp_path, trained_run):
    checkpoints, _, _ = trained_run
    with pytest.raises(ValueError, match="exactly one model source"):
        export_script_in_process([f"checkpoint={checkpoints}", "run_id=r", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="run_id=r needs tracking_uri"):
        export_script_in_process(["run_id=r", "tracking_uri=null", f"paths.output_dir={tmp_path}"])


def test_export_of_a_run_is_logged_as_its_artifact(tmp_path, trained_run, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    from mgelab.tracking.store import TrackingStore, prepare_store

    _, best, data = trained_run
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = TrackingStore(uri)
    run_id = store.create_run(prepare_store(uri, "export_test", str(tmp_path / "artifacts")), "cnn", {})
    for part in sorted(best.iterdir()):  # as a run logs its best checkpoint
        store.log_artifact(run_id, part, BEST_CHECKPOINT_ARTIFACT)
    store.terminate(run_id, "FINISHED")

    scratch = tmp_path / "scratch"  # where the run's checkpoint is downloaded to, and deleted from
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = export_script_in_process([f"run_id={run_id}", f"tracking_uri={uri}", "batch_size=4",
                                       f"paths.output_dir={tmp_path}"])
    name = f"cnn_{run_id[:8]}"
    assert result.path == tmp_path / "export" / f"{name}.mge" and list(scratch.iterdir()) == []
    assert json.loads(result.meta_path.read_text())["source"] == {"run_id": run_id, "tracking_uri": uri}
    assert f"logged to run {run_id}" in capsys.readouterr().out
    client = MlflowClient(uri)
    assert sorted(Path(a.path).name for a in client.list_artifacts(run_id, "export")) == [f"{name}.json", f"{name}.mge"]
    local = client.download_artifacts(run_id, f"export/{name}.mge", str(tmp_path / "download"))
    pixels = data.splits["test"].inputs[:8]
    want = ExportSource(checkpoint=str(best)).load().predict_raw(pixels)
    np.testing.assert_allclose(InferenceGraph(local).run(pixels), want, rtol=1e-5, atol=1e-5)


def test_export_script_fails_clearly_without_a_source(tmp_path):
    proc = run_export(tmp_path)
    assert proc.returncode != 0 and "export failed: give exactly one model source" in proc.stderr


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing does not exist"):
        ExportSource(checkpoint=str(tmp_path / "missing")).load()
