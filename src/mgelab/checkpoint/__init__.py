"""mgelab's checkpoint format, the lowest layer: a directory of ``arrays.npz`` + ``manifest.json``
(sha256 of every file, JSON metadata), written atomically, read with verification, and a
restricted unpickler for the pickled files other projects publish. Models (pretrained weights),
training (resume) and serving (loading a trained model) all read and write through it; it
imports nothing else of mgelab and no MegEngine."""

from mgelab.checkpoint.format import (
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    check_fits,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "check_fits",
    "load_checkpoint",
    "read_manifest",
    "save_checkpoint",
]
