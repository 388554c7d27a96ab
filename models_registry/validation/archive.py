"""Unpacking uploaded model archives safely, in pure Python.

Every entry is checked before a byte is written: no ``..``, no absolute path,
no link or device, a bounded number of entries, a bounded unpacked size and
compression ratio. Sizes declared in headers are checked first, then the bytes
actually written are counted, because headers can lie. Files are created with
``open(..., "xb")`` below the target folder only, so nothing is overwritten or
written elsewhere.
"""

import gzip
import json
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from models_registry.validation.errors import ModelRejected

CHUNK = 1024 * 1024
# Below this many unpacked bytes the ratio is not checked: a tiny archive of a
# tiny model compresses well and harms nobody.
RATIO_FLOOR_BYTES = 1024 * 1024
# Tar headers and padding that come on top of the files' own bytes.
TAR_OVERHEAD_PER_ENTRY = 2048
IGNORED_TOP_LEVEL = {"__MACOSX", ".DS_Store"}
MAX_LABELS_FILE_BYTES = 1024 * 1024
MAX_KERAS_CONFIG_BYTES = 64 * 1024 * 1024
SAVEDMODEL_PARTS = {
    "saved_model.pb",
    "fingerprint.pb",
    "keras_metadata.pb",
    "variables",
    "assets",
    "assets.extra",
}
LAMBDA_CLASS_NAMES = {"Lambda", "__lambda__"}
KERAS_LAMBDA_PATTERN = re.compile(rb'"class_name":\s*"(Lambda|__lambda__)"')


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_unpacked_bytes: int
    max_ratio: float


class _Budget:
    """Counts unpacked bytes against the size and ratio limits."""

    def __init__(self, limits: ArchiveLimits, archive_bytes: int, what: str):
        self.limits = limits
        self.archive_bytes = max(archive_bytes, 1)
        self.what = what
        self.used = 0

    def check(self, total: int, *, declared: bool) -> None:
        verb = "declares" if declared else "unpacks to"
        if total > self.limits.max_unpacked_bytes:
            raise ModelRejected(
                f"The {self.what} {verb} more than {self.limits.max_unpacked_bytes:,} bytes "
                "unpacked, over the limit (LINESIGHT_ARCHIVE_MAX_UNPACKED_BYTES)."
            )
        if total > RATIO_FLOOR_BYTES and total / self.archive_bytes > self.limits.max_ratio:
            raise ModelRejected(
                f"The {self.what} {verb} {total:,} bytes from {self.archive_bytes:,} compressed "
                f"bytes, a ratio over {self.limits.max_ratio:g}:1 "
                "(LINESIGHT_ARCHIVE_MAX_RATIO); it looks like an archive bomb."
            )

    def add(self, count: int) -> None:
        self.used += count
        self.check(self.used, declared=False)


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path components of an archive entry, or a rejection naming the entry."""
    shown = name[:120]
    if "\x00" in name:
        raise ModelRejected(f"The archive entry '{shown}' has a NUL byte in its name.")
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        raise ModelRejected(
            f"The archive entry '{shown}' has an absolute path; entries must be relative "
            "to the archive's folder."
        )
    parts = tuple(part for part in normalised.split("/") if part not in ("", "."))
    if ".." in parts:
        raise ModelRejected(
            f"The archive entry '{shown}' points outside the archive ('..'); "
            "such archives are refused."
        )
    return parts


def _target_path(root: Path, parts: tuple[str, ...]) -> Path:
    target = root.joinpath(*parts)
    # Defence in depth: only folders this module created lie on the way.
    if not target.resolve().is_relative_to(root.resolve()):
        raise ModelRejected(f"The archive entry '{'/'.join(parts)}' escapes the archive folder.")
    return target


def _clash(name: str) -> ModelRejected:
    return ModelRejected(
        f"The archive holds '{name[:120]}' twice, or as both a file and a folder; "
        "such archives are refused."
    )


def _make_dir(target: Path, name: str) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _clash(name) from None


def _copy(source: IO[bytes], target: Path, budget: _Budget, name: str) -> None:
    _make_dir(target.parent, name)
    try:
        sink = open(target, "xb")  # noqa: SIM115 - closed below, with the error mapped
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise _clash(name) from None
    with sink:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            budget.add(len(chunk))
            sink.write(chunk)


def _check_entry_count(count: int, limits: ArchiveLimits) -> None:
    if count > limits.max_entries:
        raise ModelRejected(
            f"The archive has more than {limits.max_entries:,} entries "
            "(LINESIGHT_ARCHIVE_MAX_ENTRIES); a SavedModel needs a handful."
        )


def _zip_entry_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) == 0:  # no Unix mode recorded (e.g. made on Windows)
        return "dir" if info.is_dir() else "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode) or info.is_dir():
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "device"


def _check_zip_entries(
    infos: list[zipfile.ZipInfo], limits: ArchiveLimits, budget: _Budget
) -> None:
    _check_entry_count(len(infos), limits)
    for info in infos:
        _safe_parts(info.filename)
        kind = _zip_entry_kind(info)
        if kind == "symlink":
            raise ModelRejected(
                f"The archive entry '{info.filename[:120]}' is a symbolic link; links are refused."
            )
        if kind == "device":
            raise ModelRejected(
                f"The archive entry '{info.filename[:120]}' is a device or special file; "
                "only files and folders are accepted."
            )
        if info.flag_bits & 0x1:
            raise ModelRejected(
                f"The archive entry '{info.filename[:120]}' is encrypted; upload it unencrypted."
            )
    budget.check(sum(info.file_size for info in infos), declared=True)


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        raise ModelRejected(
            f"The {what} is not a readable zip archive ({error}); it may be corrupt or "
            "truncated. Upload it again."
        ) from None


def unpack_zip(archive: Path, root: Path, limits: ArchiveLimits) -> None:
    """Unpack a zip archive below ``root`` (an empty folder), refusing anything unsafe."""
    budget = _Budget(limits, archive.stat().st_size, "archive")
    with _open_zip(archive, "archive") as bundle:
        infos = bundle.infolist()
        _check_zip_entries(infos, limits, budget)
        for info in infos:
            parts = _safe_parts(info.filename)
            if not parts:
                continue
            target = _target_path(root, parts)
            if _zip_entry_kind(info) == "dir":
                _make_dir(target, info.filename)
                continue
            try:
                with bundle.open(info) as source:
                    _copy(source, target, budget, info.filename)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                raise ModelRejected(
                    f"The archive is corrupt: '{info.filename[:120]}' cannot be unpacked "
                    f"({error}). Upload it again."
                ) from None


class _LimitedStream:
    """A read-only stream that stops with a rejection after ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], budget: _Budget, limit: int):
        self.stream = stream
        self.budget = budget
        self.limit = limit
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size if size is not None and size >= 0 else CHUNK)
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            self.budget.check(self.budget.limits.max_unpacked_bytes + 1, declared=False)
        return data


def _tar_members(tar: tarfile.TarFile, limits: ArchiveLimits) -> Iterator[tarfile.TarInfo]:
    for count, member in enumerate(tar, start=1):
        _check_entry_count(count, limits)
        yield member


def unpack_tar_gz(archive: Path, root: Path, limits: ArchiveLimits) -> None:
    """Unpack a .tar.gz below ``root`` in one streaming pass, refusing anything unsafe."""
    budget = _Budget(limits, archive.stat().st_size, "archive")
    stream_limit = limits.max_unpacked_bytes + TAR_OVERHEAD_PER_ENTRY * (limits.max_entries + 2)
    try:
        with (
            open(archive, "rb") as raw,
            gzip.GzipFile(fileobj=raw) as unzipped,
            tarfile.open(fileobj=_LimitedStream(unzipped, budget, stream_limit), mode="r|") as tar,
        ):
            declared = 0
            for member in _tar_members(tar, limits):
                parts = _safe_parts(member.name)
                if member.issym() or member.islnk():
                    kind = "symbolic" if member.issym() else "hard"
                    raise ModelRejected(
                        f"The archive entry '{member.name[:120]}' is a {kind} link; "
                        "links are refused."
                    )
                if not (member.isfile() or member.isdir()):
                    raise ModelRejected(
                        f"The archive entry '{member.name[:120]}' is a device or special file; "
                        "only files and folders are accepted."
                    )
                declared += member.size
                budget.check(declared, declared=True)
                if not parts:
                    continue
                target = _target_path(root, parts)
                if member.isdir():
                    _make_dir(target, member.name)
                    continue
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    continue
                _copy(source, target, budget, member.name)
    except ModelRejected:
        raise
    except TAR_ERRORS as error:
        raise _unreadable_tar(error) from None


TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)


def _unreadable_tar(error: BaseException) -> ModelRejected:
    return ModelRejected(
        f"The archive is not a readable .tar.gz ({error or type(error).__name__}); it may be "
        "corrupt or truncated. Upload it again."
    )


def _listed(parts: tuple[str, ...], is_dir: bool) -> str:
    """An entry as listings name it: its relative path, a folder with a trailing '/'."""
    return "/".join(parts) + ("/" if is_dir else "")


def zip_listing(archive: Path, limits: ArchiveLimits) -> list[str]:
    """The entries of a zip, checked as unpack_zip checks them, without unpacking a byte."""
    budget = _Budget(limits, archive.stat().st_size, "archive")
    with _open_zip(archive, "archive") as bundle:
        infos = bundle.infolist()
        _check_zip_entries(infos, limits, budget)
    listed = ((_safe_parts(info.filename), _zip_entry_kind(info) == "dir") for info in infos)
    return [_listed(parts, is_dir) for parts, is_dir in listed if parts]


def tar_gz_listing(archive: Path, limits: ArchiveLimits) -> list[str]:
    """The entries of a .tar.gz, read in one bounded streaming pass (nothing is written)."""
    budget = _Budget(limits, archive.stat().st_size, "archive")
    stream_limit = limits.max_unpacked_bytes + TAR_OVERHEAD_PER_ENTRY * (limits.max_entries + 2)
    try:
        with (
            open(archive, "rb") as raw,
            gzip.GzipFile(fileobj=raw) as unzipped,
            tarfile.open(fileobj=_LimitedStream(unzipped, budget, stream_limit), mode="r|") as tar,
        ):
            listed = [(_safe_parts(m.name), m.isdir()) for m in _tar_members(tar, limits)]
    except ModelRejected:
        raise
    except TAR_ERRORS as error:
        raise _unreadable_tar(error) from None
    return [_listed(parts, is_dir) for parts, is_dir in listed if parts]


def find_savedmodel(root: Path) -> Path:
    """The folder holding saved_model.pb: the archive's root or its one top folder."""
    listing = [_listed(p.relative_to(root).parts, p.is_dir()) for p in root.rglob("*")]
    return root / savedmodel_folder(listing)


def savedmodel_folder(listing: list[str]) -> str:
    """Where saved_model.pb is in an archive's listing: "" (its root) or its one top folder.

    ``listing`` names entries by relative path, folders ending in '/' (as
    zip_listing and tar_gz_listing give them), so an upload is checked before
    it is unpacked, with the rule validation applies after.
    """
    names = set(listing)
    if "saved_model.pb" in names:
        return ""
    tops = {name.split("/", 1)[0] + ("/" if "/" in name else "") for name in names}
    entries = sorted(
        top for top in tops if top.rstrip("/") not in IGNORED_TOP_LEVEL and top.rstrip("/")
    )
    if len(entries) == 1 and entries[0].endswith("/") and f"{entries[0]}saved_model.pb" in names:
        return entries[0].rstrip("/")
    deeper = sorted(name for name in names if name.split("/")[-1] == "saved_model.pb")
    if deeper:
        raise ModelRejected(
            f"saved_model.pb is at '{deeper[0]}'; put it at the archive's root or inside one "
            "top folder (zip the folder that model.export() or tf.saved_model.save() wrote)."
        )
    if any(name.split("/")[-1] == "saved_model.pbtxt" for name in names):
        raise ModelRejected(
            "The archive holds saved_model.pbtxt; save the SavedModel in binary form "
            "(saved_model.pb), as tf.saved_model.save() and model.export() do."
        )
    found = ", ".join(entries[:8]) or "nothing"
    raise ModelRejected(
        f"The archive holds no SavedModel (no saved_model.pb); found: {found}. "
        "Upload the folder written by model.export() or tf.saved_model.save()."
    )


def savedmodel_files(model_dir: Path) -> Iterator[Path]:
    """The files of a SavedModel that serve; labels.txt and other extras stay behind."""
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and path.relative_to(model_dir).parts[0] in SAVEDMODEL_PARTS:
            yield path


def read_labels_file(root: Path, model_dir: Path) -> str | None:
    """The text of labels.txt next to saved_model.pb or at the archive's root, if any."""
    for folder in (model_dir, root):
        path = folder / "labels.txt"
        if path.is_file():
            if path.stat().st_size > MAX_LABELS_FILE_BYTES:
                raise ModelRejected(
                    f"labels.txt is over {MAX_LABELS_FILE_BYTES:,} bytes; give one label per line."
                )
            try:
                return path.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError:
                raise ModelRejected(
                    "labels.txt is not UTF-8 text; save it as UTF-8, one label per line."
                ) from None
    return None


def keras_metadata_has_lambda(model_dir: Path) -> bool:
    """True when a Keras SavedModel's metadata describes a Lambda layer (Python code)."""
    path = model_dir / "keras_metadata.pb"
    if not path.is_file():
        return False
    # The metadata is JSON held as plain strings in the protobuf.
    return bool(KERAS_LAMBDA_PATTERN.search(path.read_bytes()))


def _walk_configs(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk_configs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_configs(value)


def _is_custom_class(config: dict) -> bool:
    module = config.get("module")
    registered = config.get("registered_name")
    if isinstance(registered, str) and ">" in registered:
        return True
    return isinstance(module, str) and not (
        module == "keras" or module.startswith("keras.") or module == "builtins"
    )


def inspect_keras_file(path: Path, limits: ArchiveLimits) -> None:
    """Refuse a .keras file that is not a sound Keras 3 archive or holds Python code.

    A .keras file is a zip that Keras reads itself (in the sandbox), so it is
    checked like an archive, and its config.json is searched for Lambda
    layers and custom classes before anything loads it.
    """
    budget = _Budget(limits, path.stat().st_size, ".keras file")
    with _open_zip(path, ".keras file") as bundle:
        infos = bundle.infolist()
        _check_zip_entries(infos, limits, budget)
        names = {info.filename: info for info in infos}
        info = names.get("config.json")
        if info is None:
            raise ModelRejected(
                "The .keras file has no config.json; save the model with Keras 3 "
                "(model.save('model.keras')) or upload a SavedModel."
            )
        if info.file_size > MAX_KERAS_CONFIG_BYTES:
            raise ModelRejected("The .keras file's config.json is implausibly large.")
        try:
            with bundle.open(info) as source:
                config = json.loads(source.read(MAX_KERAS_CONFIG_BYTES + 1))
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as error:
            raise ModelRejected(
                f"The .keras file's config.json cannot be read ({error}); the file may be "
                "corrupt. Save it again."
            ) from None
    for node in _walk_configs(config):
        if node.get("class_name") in LAMBDA_CLASS_NAMES:
            layer = (
                node.get("config", {}).get("name") if isinstance(node.get("config"), dict) else None
            )
            named = f" '{layer}'" if layer else ""
            raise ModelRejected(
                f"The model has a Keras Lambda layer{named}: it holds Python code, which "
                "LineSight does not run. Replace it with built-in layers, or export the model "
                "as a SavedModel (model.export) and upload that."
            )
        if "class_name" in node and _is_custom_class(node):
            name = node.get("registered_name") or node["class_name"]
            raise ModelRejected(
                f"The model uses a custom class '{name}'"
                f" (module {node.get('module')}); LineSight loads only built-in Keras layers "
                "from .keras files. Export the model as a SavedModel (model.export) and upload "
                "that."
            )


class ZipReader:
    """The files of a zip, read one at a time in memory with unpack_zip's checks and limits.

    For dataset imports, which read each image once and need no copy on disk.
    Every entry is checked when the reader opens; bytes read count against
    the size and ratio limits as unpack_zip's do. Use as a context manager.
    """

    def __init__(self, archive: Path, limits: ArchiveLimits):
        self.budget = _Budget(limits, archive.stat().st_size, "archive")
        self.bundle = _open_zip(archive, "archive")
        self.folders: set[str] = set()
        self.files: dict[str, zipfile.ZipInfo] = {}
        try:
            self._index(self.bundle.infolist(), limits)
        except BaseException:
            self.bundle.close()
            raise

    def _index(self, infos: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
        _check_zip_entries(infos, limits, self.budget)
        for info in infos:
            parts = _safe_parts(info.filename)
            name = "/".join(parts)
            if not parts:
                continue
            if name in self.files or (name in self.folders and _zip_entry_kind(info) != "dir"):
                raise _clash(info.filename)
            if _zip_entry_kind(info) == "dir":
                self.folders.add(name)
            else:
                self.files[name] = info

    def __enter__(self) -> "ZipReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bundle.close()

    def read(self, name: str, max_bytes: int) -> bytes:
        """The bytes of the file ``name`` (a key of ``files``): at most ``max_bytes`` + 1."""
        info = self.files[name]
        left = self.budget.limits.max_unpacked_bytes - self.budget.used + 1
        try:
            with self.bundle.open(info) as source:
                data = source.read(min(max_bytes + 1, left))
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
            raise ModelRejected(
                f"The archive is corrupt: '{info.filename[:120]}' cannot be unpacked "
                f"({error}). Upload it again."
            ) from None
        self.budget.add(len(data))
        return data
