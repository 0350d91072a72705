"""What every downloaded dataset shares: its options and reading members out of a tar.

A subclass names its files and defaults as class attributes; the constructor takes
the same options for all of them (data_dir, mirror, base_url, verify, sha256,
system_dirs, name), so a config can point any of them at a mirror or a loopback server.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple

from mgelab.data.arrays import ArrayDataModule
from mgelab.data.errors import DataError
from mgelab.data.fetch import RemoteFile, fetch_files, mirror_sources

_FIX = "delete it so it is fetched again, or replace it with a good copy"


class RemoteDataModule(ArrayDataModule):
    """An ArrayDataModule whose files are found or downloaded by ``fetch_files``.

    None for base_url, system_dirs or name means the class default. sha256 maps a
    file name to the sha256 of a copy you re-packed or trust (its bytes, or its
    decompressed payload); verify=False accepts mismatching copies with a warning.
    """

    cache_name = ""  # sub-directory of data_dir, and the dataset's name in messages
    remote_files: Tuple[RemoteFile, ...] = ()
    default_base_url = ""
    default_system_dirs: Tuple[str, ...] = ()
    default_name = ""
    default_class_names: Optional[Tuple[str, ...]] = None
    hint: Optional[str] = None  # another way to get the files, shown when all fail

    def __init__(
        self,
        data_dir: str,
        mirror: Optional[str] = None,
        base_url: Optional[str] = None,
        verify: bool = True,
        sha256: Optional[Mapping[str, str]] = None,
        system_dirs: Optional[Sequence[str]] = None,
        name: Optional[str] = None,
        **batching,
    ) -> None:
        batching.setdefault("class_names", self.default_class_names)
        super().__init__(name=name or self.default_name, **batching)
        self.data_dir = Path(data_dir).expanduser()
        self.mirror = mirror
        self.base_url = base_url or self.default_base_url
        self.verify = bool(verify)
        self.sha256 = dict(sha256 or {})
        dirs = self.default_system_dirs if system_dirs is None else system_dirs
        self.system_dirs = [Path(d) for d in dirs]

    def fetch(self, progressbar: bool = True) -> Dict[str, Path]:
        """{file name: local path} of every file in ``remote_files``, verified."""
        return fetch_files(
            self.remote_files,
            dataset=self.cache_name,
            base_url=self.base_url,
            cache_dir=self.data_dir,
            mirrors=mirror_sources(self.mirror),
            system_dirs=self.system_dirs,
            verify=self.verify,
            progressbar=progressbar,
            sha256_overrides=self.sha256 or None,
            hint=self.hint,
        )


def iter_tar_members(archive: Path, members: Sequence[str]) -> Iterator[Tuple[str, bytes]]:
    """Yield (name, bytes) for exactly the named regular-file members, in archive order.

    Nothing is written to disk and no other member is read (so a crafted member
    name such as "../../x" can do no harm); one pass, since seeking back in a
    gzip stream means decompressing it again. Raises DataError naming the archive
    when it cannot be read or lacks a member.
    """
    wanted, seen = set(members), []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                seen.append(info.name)
                if info.name not in wanted:
                    continue
                wanted.discard(info.name)  # a repeated name: the first one counts
                stream = tar.extractfile(info) if info.isfile() else None
                if stream is None:
                    raise DataError(f"{archive}: member {info.name} is not a regular file; "
                                    f"the archive is not the expected release: {_FIX}.")
                yield info.name, stream.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{archive}: cannot read it as a tar archive ({type(exc).__name__}: "
                        f"{exc}): {_FIX}.") from exc
    if wanted:
        raise DataError(
            f"{archive}: unexpected layout, missing member(s) {', '.join(sorted(wanted))}; it holds "
            f"{len(seen)} member(s), e.g. {', '.join(seen[:5]) or '(none)'}. This is not the expected "
            f"release: {_FIX}."
        )
