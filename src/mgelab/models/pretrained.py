"""Pretrained weights by name: fetched like dataset files, unpickled safely once, kept as a checkpoint.

``load_pretrained(model, name="resnet18", cache_dir=...)``:

1. The converted checkpoint ``<cache_dir>/weights/<name>/`` (mgelab's npz + manifest format,
   no pickle) is used when present.
2. Otherwise the published pickle is found or downloaded by ``mgelab.data.fetch.fetch_files``
   (cache, ``mirror``, env ``MGELAB_WEIGHTS_MIRROR``, env ``MGELAB_DATA_MIRROR``, then
   ``base_url``; retries; sha256 checked when one is pinned here or given as ``sha256``),
   read through the restricted unpickler (numpy arrays in plain containers, nothing else),
   converted to that checkpoint and the pickle deleted.
3. The arrays are adapted (see ``adapt``) and checked key by key against the model.

MegEngine's official models were trained on BGR images (cv2.imread) normalised with mean
(103.53, 116.28, 123.675) and std (57.375, 57.12, 58.395) on the 0-255 scale. mgelab's images
are RGB, so ``adapt`` reverses the input channels of the first conv once while loading: the
model then takes RGB normalised with ImageNet's RGB statistics (mean 0.485, 0.456, 0.406, std
0.229, 0.224, 0.225 on the 0-1 scale: the same numbers / 255, reordered) and computes exactly
what the official model computes on the BGR image.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import megengine.module as M
import numpy as np

from mgelab.checkpoint import CheckpointError, check_fits, load_checkpoint, read_manifest, save_checkpoint
from mgelab.checkpoint.safe_pickle import UnsafePickleError
from mgelab.data.errors import DataError
from mgelab.data.fetch import RemoteFile, fetch_files, file_sha256, mirror_sources

log = logging.getLogger(__name__)

OFFICIAL_BASE_URL = "https://data.megengine.org.cn/models/weights"
CACHE_SUBDIR = "weights"  # under cache_dir: the downloaded pickle, then the converted checkpoint
WEIGHTS_MIRROR_ENV = "MGELAB_WEIGHTS_MIRROR"
HEAD_PREFIX = "fc."
FIRST_CONV = "conv1.weight"
KEYS = "model.weights"  # the config node holding load_pretrained's options, for messages


class PretrainedError(RuntimeError):
    """Weights that cannot be found, are damaged or unsafe, or do not fit the model."""


@dataclass(frozen=True)
class PretrainedWeights:
    name: str
    file_name: str  # upstream, under base_url
    num_classes: int
    channel_order: str  # of the images the weights were trained on: "bgr" or "rgb"
    # sha256 of the published file. MegEngine/Models publishes none (its hub does not check
    # one); the 8 hex digits in the file name are not documented as a hash prefix, so
    # nothing is pinned: the download is used unverified, with a warning, unless you give one.
    sha256: Optional[str] = None
    note: str = ""
    # What a model with these weights takes: one RGB sample's shape, and the mean/std (0-1
    # scale, RGB order) its inputs are normalised with once conv1 has been put in RGB order.
    input_shape: Tuple[int, int, int] = (3, 224, 224)
    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)


WEIGHTS: Dict[str, PretrainedWeights] = {
    "resnet18": PretrainedWeights(
        "resnet18", "resnet18_naiveaug_70312_78a63ca6.pkl", 1000, "bgr",
        note="MegEngine/Models official ResNet-18, ImageNet top-1 70.312 %",
    ),
}


def weights_spec(name: str) -> PretrainedWeights:
    if name not in WEIGHTS:
        raise PretrainedError(f"{KEYS}.name={name!r} is unknown; choose one of {sorted(WEIGHTS)}")
    return WEIGHTS[name]


def weights_mirrors(mirror: Optional[str]) -> List[str]:
    """The configured mirror, env MGELAB_WEIGHTS_MIRROR, then the data mirror (one directory may hold both)."""
    return [m for m in (mirror, os.environ.get(WEIGHTS_MIRROR_ENV)) if m] + mirror_sources(None)


def _fetch_error(spec: PretrainedWeights, exc: Exception) -> PretrainedError:
    # fetch_files speaks of data.* keys; say once which keys mean the same for weights.
    return PretrainedError(
        f"pretrained weights {spec.name!r} ({spec.file_name}): for weights the settings are "
        f"{KEYS}.mirror (or env {WEIGHTS_MIRROR_ENV}), {KEYS}.sha256 and {KEYS}.verify, in place of "
        f"the data.* keys named below.\n{exc}"
    )


def _convert(source: Path, target: Path, spec: PretrainedWeights) -> Path:
    """Pickle -> checkpoint directory, through the restricted unpickler. A downloaded pickle is deleted
    after (it is never needed again); a mirror's copy is only read."""
    downloaded = source.parent.resolve() == target.parent.resolve()
    try:
        arrays = load_checkpoint(source, trust_pickle=True).arrays
    except Exception as exc:  # refused by the allow-list, or damaged (which raises almost anything)
        if downloaded:
            source.unlink(missing_ok=True)  # never leave it where the next run would find it again
        done = "refused" if isinstance(exc, UnsafePickleError) else f"unreadable ({type(exc).__name__})"
        raise PretrainedError(
            f"{source} was {done}{' and deleted' if downloaded else ''}: {exc}. Published weights are a pickle of "
            f"numpy arrays only, so this copy is not the file {spec.name!r} names; check {KEYS}.mirror and "
            f"{KEYS}.base_url, or replace the mirror's copy."
        ) from exc
    meta = {"weights": spec.name, "source_file": spec.file_name, "source_sha256": file_sha256(source),
            "channel_order": spec.channel_order}
    try:
        save_checkpoint(target, arrays, meta)
    except FileExistsError:
        pass  # converted meanwhile by another job of a sweep: theirs is as good
    if downloaded:
        source.unlink(missing_ok=True)
    log.info("pretrained %s: converted %s to the checkpoint %s", spec.name, source.name, target)
    return target


def fetch_weights(
    name: str = "resnet18",
    *,
    cache_dir: Optional[str] = None,
    mirror: Optional[str] = None,
    base_url: Optional[str] = None,
    sha256: Optional[str] = None,
    verify: bool = True,
    retries: int = 1,
    progressbar: bool = False,
) -> Path:
    """The converted checkpoint directory of weights ``name``, fetching and converting them if needed."""
    spec = weights_spec(name)
    if not cache_dir:
        raise PretrainedError(f"{KEYS}.cache_dir is not set: give the directory weights are cached in")
    target = Path(cache_dir).expanduser() / CACHE_SUBDIR / spec.name
    pinned = (sha256 or spec.sha256 or "").strip().lower() or None
    if (target / "manifest.json").is_file():
        recorded = read_manifest(target)[1]["meta"].get("source_sha256")  # no arrays read yet
        if not (verify and pinned and recorded != pinned):
            return target
        raise PretrainedError(f"{target} was converted from a file with sha256 {recorded}, not the pinned "
                              f"{pinned}; delete {target} so the weights are fetched again.")
    try:
        source = fetch_files(
            [RemoteFile(spec.file_name, sha256=pinned)], dataset=CACHE_SUBDIR,
            base_url=base_url or OFFICIAL_BASE_URL, cache_dir=Path(cache_dir).expanduser(),
            mirrors=weights_mirrors(mirror), verify=verify, progressbar=progressbar, retries=retries,
        )[spec.file_name]
    except DataError as exc:
        raise _fetch_error(spec, exc) from exc
    return _convert(source, target, spec)


def _flat_norm_shape(array: np.ndarray, model_value: Optional[np.ndarray]) -> np.ndarray:
    """BatchNorm vectors as the model's state_dict has them, (C,). MegEngine 1.1+ stores them
    as (1, C, 1, 1) and its own load_state_dict accepts either, so published files may hold both."""
    if model_value is None or model_value.ndim != 1 or array.shape == model_value.shape:
        return array
    if array.size == model_value.size and array.squeeze().ndim <= 1:
        return array.reshape(model_value.shape)
    return array  # a real mismatch: check_fits names it


def adapt(arrays: Mapping[str, np.ndarray], spec: PretrainedWeights,
          model_state: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """(arrays for the model, head keys left out). BGR weights get conv1's input channels reversed
    (mgelab feeds RGB); the head is left out when the model's class count differs."""
    out = {k: _flat_norm_shape(v, model_state.get(k)) for k, v in arrays.items()}
    if spec.channel_order == "bgr" and FIRST_CONV in out:
        out[FIRST_CONV] = np.ascontiguousarray(out[FIRST_CONV][:, ::-1])
    head = sorted(k for k in out if k.startswith(HEAD_PREFIX))
    head_fits = all(k in model_state and model_state[k].shape == out[k].shape for k in head)
    if head and not head_fits:
        for key in head:
            del out[key]
        return out, head
    return out, []


def load_pretrained(model: M.Module, name: str = "resnet18", **fetch_options) -> Path:
    """Load weights ``name`` into ``model`` in place (options: see ``fetch_weights``); returns the checkpoint.

    Every key must match by name, shape and dtype, except the classifier head when the model
    has a different class count: it keeps its fresh initialisation, said in one log line.
    """
    spec = weights_spec(name)
    model_state = {k: np.asarray(v) for k, v in model.state_dict().items()}
    channels = model_state[FIRST_CONV].shape[1] if FIRST_CONV in model_state else None
    if channels is not None and channels != 3:
        raise PretrainedError(f"pretrained weights {spec.name!r} take 3-channel colour images; this model was "
                              f"built for {channels} channel(s). Use colour data or model.pretrained=false.")
    path = fetch_weights(name, **fetch_options)
    try:
        stored = load_checkpoint(path).arrays  # its manifest's sha256 checked
    except CheckpointError as exc:
        raise PretrainedError(f"{exc}; delete {path} so the weights are fetched and converted again.") from exc
    arrays, skipped = adapt(stored, spec, model_state)
    if skipped:
        log.info("pretrained %s: new %d-class head; %s not loaded (the weights have %d classes)",
                 spec.name, model_state[f"{HEAD_PREFIX}bias"].shape[-1], ", ".join(skipped), spec.num_classes)
    expected = {k: v for k, v in model_state.items() if k not in skipped}
    try:
        check_fits(arrays, expected, f"pretrained weights {spec.name!r} ({path})")
    except CheckpointError as exc:
        raise PretrainedError(
            f"{exc}\nThe weights were made for MegEngine's official ResNet; a mismatch means a different "
            f"architecture or a wrong file: check model.name and {KEYS}.name, or delete {path} to fetch them again."
        ) from exc
    model.load_state_dict({**model_state, **arrays})
    return path
