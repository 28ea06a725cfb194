"""Reading .zip and .tar.gz archives member by member as streams, never extracted to disk.

Everything is checked before the first row is imported: member count, declared sizes and
compression ratio, names (no absolute paths, no `..`, no drive letters), and member types
(links, devices and nested archives are refused). While reading, the bytes actually
decompressed are counted again, so an archive that lies in its headers stops at the limit.
"""
from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from altkraft_onprem.errors import ServiceError

READABLE = (".csv", ".txt", ".tsv", ".xls", ".xlsx")
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar", ".gz", ".7z", ".rar", ".bz2", ".xz")


class ArchiveError(ServiceError):
    """An archive refused as a whole, with the reason (and member) in the message."""


@dataclass(frozen=True)
class Limits:
    max_total_bytes: int = 2 * 1024**3      # all members, uncompressed
    max_members: int = 1000
    max_ratio: float = 200.0                # uncompressed / compressed

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(settings["imports.max_archive_bytes"], settings["imports.max_archive_members"],
                   settings["imports.max_compression_ratio"])


def check_name(name: str) -> None:
    """Refuse absolute, drive-letter and parent-relative member names."""
    if not name or "\x00" in name:
        raise ArchiveError("an archive member has an empty or invalid name")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise ArchiveError("archive member %(name)s has an absolute path; refused", name=repr(name))
    if ".." in PurePosixPath(unified).parts:
        raise ArchiveError("archive member %(name)s points outside the archive (`..`); refused", name=repr(name))


def is_readable(name: str) -> bool:
    """Members we import; others (macOS resource forks, READMEs) are skipped with a note."""
    base = PurePosixPath(name.replace("\\", "/"))
    if "__MACOSX" in base.parts or base.name.startswith("._"):
        return False
    return base.name.lower().endswith(READABLE)


def _check_nested(name: str) -> None:
    if name.lower().endswith(ARCHIVES):
        raise ArchiveError("archive member %(name)s is itself an archive; nested archives are not read", name=repr(name))


class _Counted:
    """A member stream that counts decompressed bytes against the archive-wide budget."""

    def __init__(self, stream: BinaryIO, budget: _Budget, name: str, allowed: int):
        self._stream, self._budget, self._name, self._allowed = stream, budget, name, allowed
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(size)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ArchiveError("archive member %(name)s is corrupt (%(exc)s)", name=repr(self._name), exc=exc) from None
        self._read += len(data)
        if self._read > self._allowed:
            raise ArchiveError("archive member %(name)s holds more data than its header declares or the "
                               "limits allow; refused", name=repr(self._name))
        self._budget.spend(len(data), self._name)
        return data

    def readable(self) -> bool:
        return True


class _Budget:
    def __init__(self, limits: Limits, compressed: int):
        self.limits, self.compressed, self.spent = limits, max(compressed, 1), 0

    def spend(self, n: int, name: str) -> None:
        self.spent += n
        if self.spent > self.limits.max_total_bytes:
            raise ArchiveError("the archive unpacks to more than %(max_total_bytes)s bytes (at %(name)s); "
                               "refused", max_total_bytes=self.limits.max_total_bytes, name=repr(name))
        if self.spent > 1024 * 1024 and self.spent / self.compressed > self.limits.max_ratio:
            raise ArchiveError("the archive's compression ratio exceeds %(max_ratio)s:1 (at %(name)s); "
                               "refused as a possible zip bomb", max_ratio=format(self.limits.max_ratio, 'g'), name=repr(name))


# --- zip -------------------------------------------------------------------------------------

def check_zip(archive: zipfile.ZipFile, compressed_size: int, limits: Limits) -> list[zipfile.ZipInfo]:
    """The members to read, after refusing the archive for anything hostile."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise ArchiveError("the archive has %(count)s members; at most %(max_members)s are read", count=len(infos), max_members=limits.max_members)
    total = 0
    members = []
    for info in infos:
        check_name(info.filename)
        mode = info.external_attr >> 16
        if mode and stat.S_ISLNK(mode):
            raise ArchiveError("archive member %(filename)s is a symbolic link; refused", filename=repr(info.filename))
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise ArchiveError("archive member %(filename)s is encrypted; refused", filename=repr(info.filename))
        if info.file_size > 1024 * 1024 and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
            raise ArchiveError("archive member %(filename)s has a compression ratio over %(max_ratio)s:1; "
                               "refused as a possible zip bomb", filename=repr(info.filename), max_ratio=format(limits.max_ratio, 'g'))
        total += info.file_size
        if is_readable(info.filename):
            members.append(info)
        else:
            _check_nested(info.filename)
    if total > limits.max_total_bytes:
        raise ArchiveError("the archive unpacks to %(total)s bytes; at most %(max_total_bytes)s are read", total=total, max_total_bytes=limits.max_total_bytes)
    if compressed_size and total > 1024 * 1024 and total / compressed_size > limits.max_ratio:
        raise ArchiveError("the archive's compression ratio exceeds %(max_ratio)s:1; refused as a "
                           "possible zip bomb", max_ratio=format(limits.max_ratio, 'g'))
    return members


def zip_members(fileobj: BinaryIO, compressed_size: int, limits: Limits) -> Iterator[tuple[str, BinaryIO]]:
    """(name, stream) for each readable member; skipped names are yielded with stream None."""
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError("not a readable zip archive (%(exc)s)", exc=exc) from None
    with archive:
        members = check_zip(archive, compressed_size, limits)
        wanted = {id(m) for m in members}
        budget = _Budget(limits, compressed_size)
        for info in archive.infolist():
            if info.is_dir():
                continue
            if id(info) not in wanted:
                yield info.filename, None
                continue
            with archive.open(info) as stream:
                yield info.filename, _Counted(stream, budget, info.filename, info.file_size)


# --- tar(.gz) --------------------------------------------------------------------------------

def _tar_check_member(info: tarfile.TarInfo) -> None:
    check_name(info.name)
    if info.issym() or info.islnk():
        raise ArchiveError("archive member %(name)s is a link; refused", name=repr(info.name))
    if not (info.isfile() or info.isdir()):
        raise ArchiveError("archive member %(name)s is not a regular file; refused", name=repr(info.name))


def check_tar(open_raw, compressed_size: int, limits: Limits) -> None:
    """A first streaming pass over the headers: names, types, count, total size, ratio.
    Member data is skipped by the tar reader without being kept."""
    count = total = 0
    with open_raw() as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
        for info in archive:
            count += 1
            if count > limits.max_members:
                raise ArchiveError("the archive has more than %(max_members)s members; refused", max_members=limits.max_members)
            _tar_check_member(info)
            if info.isfile():
                total += info.size
                if total > limits.max_total_bytes:
                    raise ArchiveError("the archive unpacks to more than %(max_total_bytes)s bytes; refused", max_total_bytes=limits.max_total_bytes)
                if total > 1024 * 1024 and total / max(compressed_size, 1) > limits.max_ratio:
                    raise ArchiveError("the archive's compression ratio exceeds %(max_ratio)s:1; refused as a "
                                       "possible zip bomb", max_ratio=format(limits.max_ratio, 'g'))
                if not is_readable(info.name):
                    _check_nested(info.name)


def tar_members(open_raw, compressed_size: int, limits: Limits) -> Iterator[tuple[str, BinaryIO | None]]:
    """(name, stream) per member of a tar / tar.gz, read sequentially (`r|*`): never seeks,
    never writes. `open_raw()` opens the archive file afresh (it is read twice)."""
    try:
        check_tar(open_raw, compressed_size, limits)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError("not a readable tar archive (%(exc)s)", exc=exc) from None
    budget = _Budget(limits, compressed_size)
    with open_raw() as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
        for info in archive:
            _tar_check_member(info)
            if not info.isfile():
                continue
            if not is_readable(info.name):
                yield info.name, None
                continue
            stream = archive.extractfile(info)
            yield info.name, _Counted(stream, budget, info.name, info.size)
