"""Reading a dataset archive's layout: which file is which label (and group).

Two layouts are accepted: class folders (``<label>/<file>``, files in
sub-folders of a class folder belong to it), or image files with a
``labels.csv`` (header ``file,label[,group]``, paths relative to the csv).
A single top folder around either is looked through (``train/ok/1.jpg``).
Hidden files and ``__MACOSX`` are ignored.

The layout is read from names only; a ``Source`` (a zip read in place, or a
folder a .tar.gz was unpacked to) gives the bytes of one file at a time.
"""

import csv
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from common.jobs import JobFailed
from models_registry.datasets.labels import label_name_problem

LABELS_CSV = "labels.csv"
MAX_LABELS_CSV_BYTES = 64 * 1024 * 1024
IGNORED_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}


class Source(Protocol):
    files: dict  # archive name ('ok/1.png') -> anything
    folders: set[str]

    def read(self, name: str, max_bytes: int) -> bytes: ...


class FolderSource:
    """The files below a folder (a .tar.gz unpacked by the model-archive unpacker)."""

    def __init__(self, root: Path):
        self.root = root
        self.files = {}
        self.folders = set()
        for path in sorted(root.rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.is_dir():
                self.folders.add(name)
            elif path.is_file():
                self.files[name] = path

    def read(self, name: str, max_bytes: int) -> bytes:
        with open(self.files[name], "rb") as source:
            return source.read(max_bytes + 1)


@dataclass(frozen=True)
class Entry:
    key: str  # the file's name in the source
    name: str  # the path a person reads (below the top folder looked through)
    label: str
    group: str = ""


def _visible(name: str) -> bool:
    return not any(part in IGNORED_NAMES or part.startswith(".") for part in name.split("/"))


class _Tree:
    """Files and folders (given or implied by a file's path) of the visible names."""

    def __init__(self, source: Source):
        self.files = sorted(name for name in source.files if _visible(name))
        self.folders = {name for name in source.folders if _visible(name)}
        for name in self.files:
            parts = name.split("/")
            self.folders.update("/".join(parts[:i]) for i in range(1, len(parts)))

    def children(self, folder: str) -> tuple[list[str], list[str]]:
        """(files, folders) directly inside ``folder`` ('' for the top)."""
        prefix = f"{folder}/" if folder else ""

        def inside(name: str) -> bool:
            return bool(name) and name.startswith(prefix) and "/" not in name[len(prefix) :]

        return (
            sorted(n for n in self.files if inside(n)),
            sorted(n for n in self.folders if inside(n)),
        )

    def files_below(self, folder: str) -> list[str]:
        return [name for name in self.files if name.startswith(f"{folder}/")]


def _content_root(tree: _Tree) -> str:
    """Look through single wrapping folders (e.g. ``train/``) down to the classes or labels.csv."""
    root = ""
    while True:
        files, folders = tree.children(root)
        if any(PurePosixPath(f).name == LABELS_CSV for f in files) or files or len(folders) != 1:
            return root
        inner_files, inner_folders = tree.children(folders[0])
        if not inner_folders and not any(f.endswith(f"/{LABELS_CSV}") for f in inner_files):
            return root
        root = folders[0]


def _shown(name: str, root: str) -> str:
    return name[len(root) + 1 :] if root else name


def _check_label(name: str) -> None:
    problem = label_name_problem(name)
    if problem:
        raise JobFailed(f"{problem} Rename it; nothing was imported.")


def class_folder_entries(tree: _Tree, root: str, skip) -> list[Entry]:
    """Entries of a class-folder archive; ``skip(name, reason)`` hears of stray files."""
    files, folders = tree.children(root)
    for stray in files:
        skip(_shown(stray, root), "not inside a class folder")
    if not folders:
        raise JobFailed(
            "The archive holds no class folders: put each class's images in a folder named "
            "after the class (<label>/<file>), or add a labels.csv (file,label[,group])."
        )
    entries: list[Entry] = []
    for folder in folders:
        label = PurePosixPath(folder).name
        _check_label(label)
        below = tree.files_below(folder)
        if not below:
            raise JobFailed(f"The class folder '{label[:100]}' holds no images.")
        entries += [Entry(key=name, name=_shown(name, root), label=label) for name in below]
    return entries


def _read_csv_rows(source: Source, key: str) -> tuple[list[str], list[list[str]]]:
    data = source.read(key, MAX_LABELS_CSV_BYTES)
    if len(data) > MAX_LABELS_CSV_BYTES:
        raise JobFailed(f"labels.csv is over {MAX_LABELS_CSV_BYTES:,} bytes.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise JobFailed("labels.csv is not UTF-8 text; save it as UTF-8.") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if "file" not in header or "label" not in header:
        found = ",".join(rows[0])[:80] if rows else "nothing"
        raise JobFailed(
            "labels.csv must begin with the header line 'file,label' (or 'file,label,group'); "
            f"its first line is '{found}'."
        )
    return header, rows[1:]


def _csv_key(root: str, name: str, line: int) -> str:
    path = PurePosixPath(name.replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts:
        raise JobFailed(f"labels.csv line {line}: '{name[:100]}' is not a path inside the archive.")
    relative = "/".join(part for part in path.parts if part != ".")
    return f"{root}/{relative}" if root else relative


def labels_csv_entries(source: Source, tree: _Tree, root: str, skip) -> list[Entry]:
    """Entries named by labels.csv; every named file must be in the archive."""
    csv_key = f"{root}/{LABELS_CSV}" if root else LABELS_CSV
    header, rows = _read_csv_rows(source, csv_key)
    at = {column: header.index(column) for column in ("file", "label", "group") if column in header}
    entries: dict[str, Entry] = {}
    missing: list[str] = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(at["file"], at["label"]):
            raise JobFailed(f"labels.csv line {line} has {len(row)} field(s); give file,label.")
        name, label = row[at["file"]].strip(), row[at["label"]].strip()
        group = row[at["group"]].strip() if "group" in at and len(row) > at["group"] else ""
        _check_label(label)
        key = _csv_key(root, name, line)
        if key in entries:
            raise JobFailed(f"labels.csv names '{name[:100]}' twice (line {line}).")
        if key not in source.files:
            missing.append(name)
        entries[key] = Entry(key=key, name=_shown(key, root), label=label, group=group[:200])
    if missing:
        shown = ", ".join(f"'{m[:60]}'" for m in missing[:5])
        raise JobFailed(
            f"labels.csv names {len(missing)} file(s) the archive does not hold: {shown}."
        )
    if not entries:
        raise JobFailed("labels.csv lists no images.")
    for key in tree.files_below(root) if root else tree.files:
        if key not in entries and key != csv_key:
            skip(_shown(key, root), "not listed in labels.csv")
    return list(entries.values())


def archive_entries(source: Source, skip) -> tuple[str, list[Entry]]:
    """(layout, entries) of an archive."""
    tree = _Tree(source)
    root = _content_root(tree)
    csv_key = f"{root}/{LABELS_CSV}" if root else LABELS_CSV
    if csv_key in tree.files:
        return "labels.csv", labels_csv_entries(source, tree, root, skip)
    return "class folders", class_folder_entries(tree, root, skip)
