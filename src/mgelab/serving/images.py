"""Image files of any kind as raw samples a model was trained on: (C, H, W) uint8, RGB or grey.

Files are read with OpenCV as they are stored (``IMREAD_UNCHANGED``): grey, BGR, BGRA, 8 or 16 bit
or float. They are brought to 8 bit (16-bit values / 257, float 0..1 times 255), alpha is composited
over black (the background of MNIST-style data), channels become what the model takes (grey from
colour by OpenCV's luma weights; colour from grey by repetition; BGR -> RGB, the order mgelab's
colour datasets use), and the image is resized to the model's height and width (INTER_AREA when
shrinking, which averages instead of dropping pixels; bilinear when enlarging).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple

import cv2
import numpy as np

# What a directory is searched for (explicitly named files are tried whatever their suffix).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@dataclass
class ReadImages:
    """Images that were read (raw model samples and their files) and the files that were not."""

    raw: List[np.ndarray] = field(default_factory=list)  # each (C, H, W) uint8
    files: List[Path] = field(default_factory=list)
    failed: List[Tuple[Path, str]] = field(default_factory=list)  # (file, why)


def image_files(inputs: Iterable[str | Path]) -> List[Path]:
    """Named files, plus the image files of named directories (sorted, not recursive)."""
    files: List[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    return files


def decode(path: Path) -> np.ndarray:
    """The stored pixels (H, W) or (H, W, C), or ValueError saying why not."""
    if not path.is_file():
        raise ValueError("no such file")
    # imdecode of the bytes: imread cannot open some non-ASCII paths and says nothing about why.
    image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ValueError("not an image OpenCV can decode (damaged, or not an image file)")
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.rint(image / 257.0).astype(np.uint8)  # 65535 -> 255
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)  # float images hold 0..1
    raise ValueError(f"pixel type {image.dtype} is not supported (8/16-bit or float images are)")


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, channels) uint8: grey, or RGB."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:  # BGRA: composite over black
        alpha = image[:, :, 3:].astype(np.float32) / 255.0
        image = np.rint(image[:, :, :3] * alpha).astype(np.uint8)
    if image.shape[2] not in (1, 3):
        raise ValueError(f"{image.shape[2]} channels; grey, BGR or BGRA images are supported")
    if channels == 1:
        return image if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
    if channels == 3:
        return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise ValueError(f"the model takes {channels}-channel images; only grey (1) and RGB (3) models read files")


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrinking = image.shape[0] * image.shape[1] > height * width
    out = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return out.reshape(height, width, -1)  # cv2 drops a single channel axis


def load_image(path: Path, input_shape: Sequence[int]) -> np.ndarray:
    """One file as a raw (C, H, W) uint8 sample for a model taking ``input_shape`` = (C, H, W)."""
    if len(input_shape) != 3:
        raise ValueError(f"the model takes samples of shape {tuple(input_shape)}, not images; use split= instead")
    channels, height, width = (int(s) for s in input_shape)
    image = to_channels(to_uint8(decode(path)), channels)
    return np.ascontiguousarray(resize(image, height, width).transpose(2, 0, 1))


def read_images(files: Sequence[Path], input_shape: Sequence[int]) -> ReadImages:
    """Every file that can be read; the others with the reason, never an exception for one file."""
    result = ReadImages()
    for path in files:
        try:
            result.raw.append(load_image(path, input_shape))
            result.files.append(path)
        except (ValueError, cv2.error, OSError) as exc:
            result.failed.append((path, str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__))
    return result
