"""Locating, downloading and verifying dataset files.

Per file: the cache, the mirrors, system directories (e.g. a Debian package),
then upstream. A copy is used only if its hash matches (unless verify=False);
local copies are used in place, downloads land in cache_dir/<dataset>/<name>.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, NamedTuple, Optional, Sequence

import pooch
import requests  # pooch's own HTTP client: its exceptions are what a failed download raises

from mgelab.data.errors import DataError
from mgelab.data.hashes import file_md5, file_sha256, payload_sha256
from mgelab.data.idx import is_gzip
from mgelab.data.locations import local_path

__all__ = ["RemoteFile", "fetch_files", "file_md5", "file_sha256", "mirror_sources", "payload_sha256"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    """One dataset file, saved locally (cache, mirrors) under ``name``.

    md5: of the exact upstream bytes (checked by pooch on download). payload_sha256:
    of the decompressed payload for gzip files, of the bytes otherwise, so a mirror
    that re-compressed the file still verifies. sha256: of the exact bytes, for an
    archive whose publisher gives that (a .tgz is gzip: its payload is the inner tar).
    remote_name: the last URL segment upstream when it is not ``name`` (figshare
    serves files by number)."""

    name: str
    md5: str | None = None
    payload_sha256: str | None = None
    sha256: str | None = None
    remote_name: str | None = None


def mirror_sources(mirror: Optional[str]) -> list:
    """The configured mirror first, then the environment's; empty values are dropped."""
    return [m for m in (mirror, os.environ.get("MGELAB_DATA_MIRROR")) if m]


class _Want(NamedTuple):
    """One file's name and the hashes it is checked against, after overrides."""

    name: str
    md5: str | None
    sha256: str | None  # of the payload
    raw_sha256: str | None = None  # of the bytes
    remote: str = ""  # upstream's name for it, when not `name`


def _lower(value: str | None) -> str | None:
    return (value or "").strip().lower() or None


def _want(file: RemoteFile, overrides: Mapping[str, str]) -> _Want:
    remote = file.remote_name or ""
    # An override means "I re-packed this file myself": the upstream md5 can no
    # longer match, so only the given hash counts, of the payload or of the bytes
    # (`sha256sum` of an archive is what people have at hand).
    if file.name in overrides:
        pinned = _lower(overrides[file.name])
        return _Want(file.name, None, pinned, pinned, remote)
    return _Want(file.name, _lower(file.md5), _lower(file.payload_sha256), _lower(file.sha256), remote)


def _mismatch(path: Path, want: _Want) -> str | None:
    """None if the copy matches any known hash, else why it does not."""
    reasons = []
    checks = (("md5", want.md5, file_md5), ("sha256", want.raw_sha256, file_sha256),
              ("payload sha256", want.sha256, payload_sha256))
    for label, expected, digest in checks:
        if not expected or (label == "payload sha256" and expected == want.raw_sha256 and not is_gzip(path)):
            continue  # nothing known, or the same bytes as just hashed
        try:
            got = digest(path)
        except DataError:
            return "cannot be decompressed (damaged or truncated)"
        if got == expected:
            return None
        reasons.append(f"{label} is {got}, expected {expected}")
    return "; ".join(reasons) or None


class _Source(NamedTuple):
    kind: str  # "mirror" or "system directory": used in messages
    location: str
    is_url: bool


def _sources(mirrors: Sequence[str], system_dirs: Sequence[Path]) -> list[_Source]:
    out = []
    for mirror in (str(m).strip() for m in mirrors):
        if not mirror:
            continue  # an unset config value or env variable
        if mirror.startswith(("http://", "https://")):
            out.append(_Source("mirror", mirror.rstrip("/"), True))
        else:  # a directory, possibly written as a file:// URL
            out.append(_Source("mirror", str(local_path(mirror)), False))
    out += [_Source("system directory", str(Path(d)), False) for d in system_dirs]
    return out


_OFFLINE = "host name not resolved (offline?)"
_REASONS = (("connection refused", "connection refused"), ("name or service not known", _OFFLINE),
            ("name resolution", _OFFLINE), ("failed to resolve", _OFFLINE),
            ("network is unreachable", "network unreachable (offline?)"), ("timed out", "timed out"))


def _short_reason(exc: Exception) -> str:
    """A few words for the final message instead of a urllib3 traceback."""
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    text = str(exc)
    for needle, reason in _REASONS:
        if needle in text.lower():
            return reason
    return f"{type(exc).__name__}: {text[:200]}"


@dataclass
class _Fetcher:
    dataset: str
    base_url: str
    cache: Path
    sources: list[_Source]
    verify: bool
    progressbar: bool
    retries: int
    notes: dict[str, list[str]] = field(default_factory=dict)  # name -> what went wrong
    unverified: list[str] = field(default_factory=list)

    def note(self, name: str, text: str) -> None:
        self.notes.setdefault(name, []).append(text)

    def check(self, path: Path, want: _Want, origin: str) -> str | None:
        """None if this copy is usable (and log where it came from), else why not."""
        if self.verify and (want.md5 or want.sha256 or want.raw_sha256):
            reason = _mismatch(path, want)
            if reason:
                log.warning("%s: rejecting %s copy %s: %s", want.name, origin, path, reason)
                self.note(want.name, f"rejected {origin} copy {path}: {reason}")
                return reason
        else:
            self.unverified.append(want.name)
        log.info("%s: using %s copy %s", want.name, origin, path)
        return None

    def fetch(self, want: _Want) -> Path | None:
        found = self.from_cache(want)
        for source in self.sources:
            if found is None:
                found = self.from_url(source, want) if source.is_url else self.from_dir(source, want)
        return found if found is not None else self.from_upstream(want)

    def from_cache(self, want: _Want) -> Path | None:
        path = self.cache / want.name
        if not path.is_file():
            return None
        if self.check(path, want, "cached") is None:
            return path
        # A bad cached copy would shadow every good source from now on.
        log.warning("%s: deleting the bad cached copy %s", want.name, path)
        path.unlink()
        return None

    def from_dir(self, source: _Source, want: _Want) -> Path | None:
        # The same name, or an uncompressed copy (read_idx reads both).
        names = [want.name, want.name[:-3]] if want.name.endswith(".gz") else [want.name]
        for candidate in (Path(source.location) / n for n in names):
            if candidate.is_file() and self.check(candidate, want, source.kind) is None:
                return candidate
        return None

    def from_url(self, source: _Source, want: _Want) -> Path | None:
        url = f"{source.location}/{want.name}"
        path = self.download(url, want.name, None)
        if path is None or self.check(path, want, f"mirror ({url})") is None:
            return path
        path.unlink()  # ours, in the cache; unlike a directory source's copy
        return None

    def download(self, url: str, name: str, known_hash: str | None) -> Path | None:
        """pooch download into the cache; None (with a note) on network errors."""
        try:
            return Path(pooch.retrieve(url=url, known_hash=known_hash, fname=name,
                                       path=self.cache, progressbar=self.progressbar))
        except requests.RequestException as exc:
            reason = _short_reason(exc)
        except ValueError as exc:
            if "does not match the known hash" in str(exc):
                raise  # from_upstream decides whether to retry
            reason = str(exc)
        except OSError as exc:  # e.g. the cache directory is not writable
            reason = f"{type(exc).__name__}: {exc}"
        self.note(name, f"download {url}: {reason}")
        return None

    def from_upstream(self, want: _Want) -> Path | None:
        url = f"{self.base_url.rstrip('/')}/{want.remote or want.name}"
        # pooch checks the md5 itself before moving its temp file into place.
        known = f"md5:{want.md5}" if self.verify and want.md5 else None
        attempts, got = 1 + max(0, self.retries), "(unknown)"
        for _ in range(attempts):
            try:
                path = self.download(url, want.name, known)
            except ValueError as exc:  # md5 mismatch; pooch already deleted the file
                found = re.search(r"but got (\w+)", str(exc))
                got = f"md5 is {found.group(1) if found else '(unknown)'}"
                continue
            if path is None:
                return None
            if known:
                log.info("%s: downloaded from %s (md5 verified)", want.name, url)
                return path
            reason = self.check(path, want, f"downloaded ({url})")
            if reason is None:
                return path
            got = reason
            path.unlink()
        raise _hash_error(want, url, attempts, known, got)


def _hash_error(want: _Want, url: str, attempts: int, known: str | None, got: str) -> DataError:
    hashes = [f"sha256 {want.raw_sha256}"] if want.raw_sha256 else []
    hashes += [f"payload sha256 {want.sha256}"] if want.sha256 and want.sha256 != want.raw_sha256 else []
    expected = f"md5 {want.md5}" if known else " or ".join(hashes)
    return DataError(
        f"{want.name}: downloaded from {url} {attempts} time(s) but the hash never matched: "
        f"expected {expected}; last attempt: {got}. The upstream file may have changed or a "
        "proxy altered it; nothing was kept in the cache. If you trust this file, pin its hash "
        f"with data.sha256 ({want.name} -> sha256 of the file or of its decompressed payload), "
        "or skip checking with data.verify=false."
    )


def _missing_error(fetcher: _Fetcher, missing: list[str], hint: str | None) -> DataError:
    names = ", ".join(missing)
    lines = [f"Could not find or download {len(missing)} file(s) of dataset "
             f"'{fetcher.dataset}': {names}.", "Searched:", f"  - cache directory: {fetcher.cache}"]
    for source in fetcher.sources:
        absent = not source.is_url and not Path(source.location).is_dir()
        lines.append(f"  - {source.kind}: {source.location}{' (does not exist)' if absent else ''}")
    if not any(s.kind == "mirror" for s in fetcher.sources):
        lines.append("  - no mirror configured")
    details = [f"  - {text}" for name in missing for text in fetcher.notes.get(name, [])]
    lines += ["Attempts:", *details] if details else []
    fix = ("To provide a copy, set data.mirror=/path/to/dir (or env MGELAB_DATA_MIRROR) "
           f"to a directory holding {names}")
    lines.append(fix + (f", or {hint}." if hint else "."))
    return DataError("\n".join(lines))


def _warn_unverified(dataset: str, names: list[str]) -> None:
    message = (f"Dataset '{dataset}': using {', '.join(names)} WITHOUT hash verification "
               "(data.verify=false, or no known hash); a damaged or altered copy would pass.")
    log.warning(message)
    warnings.warn(message, UserWarning, stacklevel=3)  # point at fetch_files' caller


def fetch_files(
    files: Sequence[RemoteFile], *, dataset: str, base_url: str, cache_dir: Path,
    mirrors: Sequence[str] = (), system_dirs: Sequence[Path] = (), verify: bool = True,
    progressbar: bool = True, retries: int = 1,
    sha256_overrides: Mapping[str, str] | None = None, hint: str | None = None,
) -> dict[str, Path]:
    """Return {file name: local path} for every file, finding or downloading each.

    Raises DataError on a hash mismatch from upstream, or once, listing every
    missing file and every place searched, when some files cannot be found.
    hint is an extra way to get the files, e.g. a distribution package.
    """
    overrides = dict(sha256_overrides or {})
    unknown = sorted(set(overrides) - {f.name for f in files})
    if unknown:
        log.warning("sha256 overrides for unknown file(s) ignored: %s", ", ".join(unknown))
    fetcher = _Fetcher(dataset, base_url, Path(cache_dir).expanduser() / dataset,
                       _sources(mirrors, system_dirs), verify, progressbar, retries)
    found = {f.name: fetcher.fetch(_want(f, overrides)) for f in files}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise _missing_error(fetcher, missing, hint)
    if fetcher.unverified:
        _warn_unverified(dataset, fetcher.unverified)
    return {name: path for name, path in found.items() if path is not None}
