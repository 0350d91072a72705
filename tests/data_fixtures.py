"""Helpers for the data tests: a loopback HTTP server, tiny IDX files, archives and pickles.

conftest.py loads this module as a plugin (so ``http_server`` is a fixture everywhere);
test modules import the helper functions from it directly.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import socket
import struct
import tarfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest

from mgelab.data.fetch import RemoteFile
from mgelab.data.idx import write_idx

NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


class _CountingServer(http.server.ThreadingHTTPServer):
    """Counts GET requests per file name, so tests can check retries."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        handler = partial(_CountingHandler, directory=str(root))
        super().__init__(("127.0.0.1", 0), handler)
        self.counts: Counter = Counter()
        self.lock = threading.Lock()


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.counts[self.path.lstrip("/")] += 1  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # keep pytest output clean


@dataclass
class LoopbackServer:
    root: Path
    server: _CountingServer
    thread: threading.Thread
    stopped: bool = False

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def counts(self) -> Counter:
        return self.server.counts

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[LoopbackServer]:
    """An HTTP server on 127.0.0.1 (free port) serving tmp_path/'www'."""
    root = tmp_path / "www"
    root.mkdir()
    server = _CountingServer(root)
    # A short poll interval makes shutdown() quick at teardown.
    thread = threading.Thread(target=partial(server.serve_forever, poll_interval=0.05), daemon=True)
    thread.start()
    loopback = LoopbackServer(root, server, thread)
    yield loopback
    loopback.stop()


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def payload_sha_of(path: Path) -> str:
    """Computed independently of mgelab: gunzip everything in memory."""
    data = path.read_bytes()
    return hashlib.sha256(gzip.decompress(data) if path.suffix == ".gz" else data).hexdigest()


@dataclass
class TinyDataset:
    """Four tiny MNIST-style files and what was written into them."""

    directory: Path
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)  # file name -> array

    def files(self) -> Tuple[RemoteFile, ...]:
        """RemoteFile entries with the real hashes of the files as written."""
        return tuple(RemoteFile(n, md5_of(self.path(n)), payload_sha_of(self.path(n))) for n in NAMES)

    def path(self, name: str) -> Path:
        return self.directory / name

    def split(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        images, labels = (NAMES[0], NAMES[1]) if split == "train" else (NAMES[2], NAMES[3])
        return self.arrays[images], self.arrays[labels]


def tiny_arrays(seed: int = 0, n_train: int = 12, n_test: int = 8) -> Dict[str, np.ndarray]:
    """Random but seeded images (N, 28, 28) and labels (N,) for the four files."""
    rng = np.random.default_rng(seed)
    sizes = (n_train, n_train, n_test, n_test)
    return {
        name: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        if "images" in name
        else rng.integers(0, 10, n, dtype=np.uint8)
        for name, n in zip(NAMES, sizes)
    }


def write_tiny_dataset(
    directory: Path, seed: int = 0, *, compresslevel: int = 9, mtime: int = 0, gz: bool = True
) -> TinyDataset:
    """Write the four files as .gz (or uncompressed, named without .gz)."""
    dataset = TinyDataset(directory, tiny_arrays(seed))
    for name, array in dataset.arrays.items():
        target = directory / (name if gz else name[: -len(".gz")])
        write_idx(target, array, compresslevel=compresslevel, mtime=mtime)
    return dataset


def gz_bytes(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def idx_bytes(magic: bytes, dtype: int, sizes: List[int], payload_len: int) -> bytes:
    """A hand-made IDX file, so tests can break one field at a time."""
    header = magic + bytes([dtype, len(sizes)]) + b"".join(s.to_bytes(4, "big") for s in sizes)
    return header + bytes(range(256)) * (payload_len // 256) + bytes(payload_len % 256)


# -- archives and pickles as the original datasets ship them ----------------------------


def sha256_of(path: Path) -> str:
    """sha256 of the file's bytes (what `sha256sum` prints), computed here, not by mgelab."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Python2Pickler(pickle._Pickler):
    """Writes text and bytes as Python 2 did: both as STRING opcodes (Python 2's str).

    Python 3's protocol 2 writes bytes as _codecs.encode(...) calls instead; the CIFAR
    batches were made by Python 2, so this reproduces what they really contain.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        head = (pickle.SHORT_BINSTRING + bytes([len(obj)]) if len(obj) < 256
                else pickle.BINSTRING + struct.pack("<i", len(obj)))
        self.write(head + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def python2_pickle(obj: object) -> bytes:
    """``obj`` pickled with protocol 2 the way Python 2 wrote it."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_tar(path: Path, members: Dict[str, bytes], mode: str = "w:gz") -> Path:
    """A tar archive of regular files with fixed metadata (reproducible bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return path


def os_system_pickle(marker: Path) -> bytes:
    """A pickle that runs `touch <marker>` if unpickled with pickle.loads (protocol 0 text)."""
    return b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
