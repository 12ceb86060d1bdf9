"""Any folder of images as a dataset, decoded once into a memory-mapped uint8 cache.

Layout (torchvision's ImageFolder convention): two or more class subfolders (and no images beside
them) give labels, named by the folder names in sorted order; any other folder of images (flat, one
subfolder, images beside subfolders) is one unlabelled set of all its images. An optional ``test/`` subfolder
(and then optionally ``train/`` beside it) gives the test split; without one, a seeded 10% of the
images is held out. PNG, JPEG, BMP and WebP, grey or colour.

The first use decodes every image (in worker processes, a chunk of files a task)
into ``DATA_DIR/folders/<name>-<key>.npy``, keyed by a hash of every file's path, size and
modification time and of the preprocessing: a changed folder gets a new cache, a second run only
lists the folder and maps the file. The cache is written beside its final name and renamed into place
with its description (.json) last; a cache whose size or description does not match is rebuilt, never
trusted. Images that cannot be read are skipped, counted and listed in ``<cache>.skipped.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaekit.data import decode as decoding
from vaekit.utils import limits
from vaekit.utils.atomic import write_json, write_text
from vaekit.utils.errors import VaekitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
COLOURS = ("grey", "rgb")
MAX_SIDE = 1024  # --image-size above this is refused: a VAE on it would not fit anyway
MAX_SKIPPED_FRACTION = 0.1  # more unreadable images than this is an error, not a warning
HELD_OUT_FRACTION, HELD_OUT_SEED = 0.1, 0  # the test split when the folder has no test/
CACHE_VERSION = 2  # part of the key: a change to decoding makes new caches (2: file names kept)


@dataclass
class FolderImages:
    """A decoded folder: uint8 images [N, C, H, W] (train rows first, then test), labels [N]
    (-1 where the folder has no classes), the class names, notes for the user, and each image's file
    name relative to the folder."""

    images: np.ndarray
    labels: np.ndarray
    n_train: int
    classes: list[str]
    notes: list[str]
    names: list[str]


def parse_image_size(text: str | int | list[int] | tuple[int, ...]) -> list[int]:
    """``64`` or ``"64"`` -> [64, 64]; ``"48x64"`` (height x width) -> [48, 64]; checked against MAX_SIDE."""
    if isinstance(text, int) and not isinstance(text, bool):
        sides = [text, text]
    elif isinstance(text, (list, tuple)):
        sides = list(text) if len(text) == 2 else []
    else:
        parts = str(text).lower().split("x")
        try:
            sides = [int(p) for p in parts] * (2 if len(parts) == 1 else 1)
        except ValueError:
            sides = []
    if len(sides) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in sides):
        raise VaekitError(f"image size must be S or HxW in pixels, e.g. 64 or 48x64; got {text!r}")
    if not all(1 <= s <= MAX_SIDE for s in sides):
        raise VaekitError(f"image size sides must be between 1 and {MAX_SIDE} pixels; got {text!r}")
    return sides


# ----------------------------------------------------------------------------------------- scanning
def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.name.startswith(".")


def _images_under(folder: Path) -> list[Path]:
    """The image files anywhere under ``folder``, sorted; hidden files and folders are skipped. os.walk
    reads each directory once (no stat per file: the key's stat is the only one)."""
    found = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            os.path.join(top, name)
            for name in names
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
        ]
    return [Path(p) for p in sorted(found)]


def _subfolders(folder: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in skip
    )


@dataclass
class _Split:
    files: list[Path]
    labels: list[int]


def _scan_split(
    folder: Path, skip: tuple[str, ...], notes: list[str], labelled: bool | None = None
) -> tuple[_Split, list[str]]:
    """The images of one split and their class names ([] for an unlabelled set). ``labelled`` None
    decides by the layout (training); True or False follows training's decision (a test folder)."""
    loose = sorted(p for p in folder.iterdir() if _is_image(p))
    per_class = {sub.name: _images_under(sub) for sub in _subfolders(folder, skip)}
    classes = [name for name, files in per_class.items() if files]
    if not classes:
        return _Split(loose, [-1] * len(loose)), []
    if labelled is None:
        labelled = len(classes) >= 2 and not loose
    if not labelled:  # a folder of pictures, not of classes (say ~/Pictures): all of them
        everything = sorted(loose + [f for files in per_class.values() for f in files])
        notes.append(
            f"{folder} is read as one unlabelled set of {len(everything):,} images: class labels need two "
            f"or more class folders and no images beside them ({len(classes)} folder(s) with images, "
            f"{len(loose)} images directly in it)"
        )
        return _Split(everything, [-1] * len(everything)), []
    for name, files in per_class.items():
        if not files:
            notes.append(f"class folder {folder / name} has no images; skipped")
    if loose:
        notes.append(f"{len(loose)} images directly in {folder} are ignored: they have no class folder")
    files = [f for name in classes for f in per_class[name]]
    labels = [i for i, name in enumerate(classes) for _ in per_class[name]]
    return _Split(files, labels), classes


def _describe_empty(folder: Path) -> str:
    others = sum(1 for p in folder.rglob("*") if p.is_file())
    kinds = ", ".join(IMAGE_SUFFIXES)
    return f"no images ({kinds}) in {folder}" + (f"; it holds {others} other files" if others else "")


def scan_folder(root: Path) -> tuple[_Split, _Split | None, list[str], list[str]]:
    """Find the training and (if there is a test/ folder) test images of ``root`` and the class names."""
    if not root.exists():
        raise VaekitError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise VaekitError(f"{root} is a file; --dataset folder:PATH takes a folder of images")
    notes: list[str] = []
    test_root = root / "test" if (root / "test").is_dir() else None
    train_root = root / "train" if test_root is not None and (root / "train").is_dir() else root
    train, classes = _scan_split(train_root, ("test",) if train_root == root else (), notes)
    if not train.files and test_root is not None and _images_under(test_root):
        raise VaekitError(f"no training images in {train_root}: only its test/ folder has images")
    if not train.files:
        raise VaekitError(_describe_empty(train_root))
    test = None
    if test_root is not None:
        test, test_classes = _scan_split(test_root, (), notes, labelled=bool(classes))
        if not test.files:
            raise VaekitError(_describe_empty(test_root))
        if bool(classes) != bool(test_classes):
            raise VaekitError(f"{train_root} and {test_root} disagree: one has class folders, the other not")
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise VaekitError(f"{test_root} has classes that training lacks: {', '.join(unknown)}")
        if classes:  # the test folder's class numbers follow training's names
            index = {name: i for i, name in enumerate(classes)}
            test.labels = [index[test_classes[label]] for label in test.labels]
    return train, test, classes, notes


# -------------------------------------------------------------------------------------------- cache
def _key(files: list[Path], labels: list[int], n_train: int, root: Path, settings: dict) -> str:
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "n_train": n_train, **settings}).encode())
    for path, label in zip(files, labels, strict=True):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n".encode())
    return digest.hexdigest()[:16]


def cache_paths(data_dir: Path, root: Path, settings: dict, key: str) -> tuple[Path, Path]:
    """The cache's images (.npy) and description (.json) for folder ``root`` preprocessed with
    ``settings``, at contents ``key``; a new key replaces the old cache of the same folder and settings."""
    where = hashlib.sha256(json.dumps([str(root), settings]).encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", root.name)[:40] or "folder"
    stem = data_dir / "folders" / f"{name}-{where}-{key}"
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


def _read_cache(npy: Path, description: Path, key: str) -> FolderImages | None:
    """The cache if it is whole and is the one for ``key``; None if it is missing, stale or damaged."""
    try:
        meta = json.loads(description.read_text())
        if not isinstance(meta, dict) or meta.get("key") != key or meta.get("version") != CACHE_VERSION:
            return None
        shape = tuple(meta["shape"])
        images = np.load(npy, mmap_mode="c")  # copy-on-write: the file is never written through
        if images.shape != shape or images.dtype != np.uint8 or npy.stat().st_size != meta["bytes"]:
            return None
        labels = np.asarray(meta["labels"], dtype=np.int64)
        if len(labels) != shape[0] or len(meta["names"]) != shape[0]:
            return None
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return FolderImages(images, labels, meta["n_train"], meta["classes"], meta["notes"], meta["names"])


def load_folder(
    root: str | os.PathLike,
    data_dir: Path,
    image_size: list[int] | None = None,
    colour: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> FolderImages:
    """The images of folder ``root``, from the cache in ``data_dir`` (built first if needed).

    ``image_size`` ([height, width]) resizes every image (centre crop to the aspect, then antialiased
    resize); without it images keep their size, and a folder of mixed sizes is resized to the most common
    one, with a note. ``colour`` ("grey" or "rgb") converts; without it the images are RGB if any is.
    """
    root = Path(root).expanduser().resolve()
    if colour is not None and colour not in COLOURS:
        raise VaekitError(f"unknown colour {colour!r}; choose from {', '.join(COLOURS)}")
    size = None if image_size is None else parse_image_size(image_size)
    train, test, classes, notes = scan_folder(root)
    if test is None:  # hold out a seeded fraction, keeping the file order inside each split
        order = np.random.default_rng(HELD_OUT_SEED).permutation(len(train.files))
        n_test = max(1, round(len(order) * HELD_OUT_FRACTION)) if len(order) > 1 else 0
        held, kept = np.sort(order[:n_test]), np.sort(order[n_test:])
        test = _Split([train.files[i] for i in held], [train.labels[i] for i in held])
        train = _Split([train.files[i] for i in kept], [train.labels[i] for i in kept])
    files, labels = train.files + test.files, train.labels + test.labels
    settings = {"image_size": size, "colour": colour, "classes": classes}
    key = _key(files, labels, len(train.files), root, settings)
    npy, description = cache_paths(data_dir, root, settings, key)
    cached = _read_cache(npy, description, key)
    if cached is not None:
        return cached
    description.unlink(missing_ok=True)  # the old description must not vouch for a new file
    built, skipped = _build_cache(
        root, files, labels, len(train.files), classes, notes, size, colour, progress, log, npy
    )
    _describe_cache(built, npy, description, key, root, skipped)
    return built


def _build_cache(
    root: Path,
    files: list[Path],
    labels: list[int],
    n_train: int,
    classes: list[str],
    notes: list[str],
    size: list[int] | None,
    colour: str | None,
    progress: bool,
    log: Callable[[str], None],
    npy: Path,
) -> tuple[FolderImages, list[str]]:
    """Decode ``files`` straight into a memory-mapped .npy beside ``npy`` (never all in memory at once)
    and rename it into place; returns the images (mapped) and the skipped files with their errors."""
    log(f"decoding {len(files):,} images of {root} (once; cached in {npy.parent})")
    skipped: list[tuple[Path, str]] = []
    if size is not None and colour is not None:  # nothing to learn from the headers: decode at once
        headers = [(None, None)] * len(files)
    else:
        headers = list(decoding.parallel(decoding.open_header, files, "reading headers", progress))
    good = [i for i, (_, error) in enumerate(headers) if error is None]
    skipped += [(files[i], error) for i, (_, error) in enumerate(headers) if error is not None]
    _check_skipped(root, files, skipped, good)
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(f".{npy.name}.{os.getpid()}.tmp")
    try:
        chosen = decoding.choose_settings(headers, good, size, colour)
        (height, width), channels = chosen[0], 1 if chosen[1] == "grey" else 3
        what = f"the cache of {len(good):,} decoded {height}x{width} images"
        limits.check_disk(len(good) * channels * height * width, npy, what)
        kept, failed = decoding.decode_into(tmp, files, good, chosen[0], chosen[1], progress)
        _check_skipped(root, files, skipped + failed, kept)
        if failed and decoding.choose_settings(headers, kept, size, colour) != chosen:
            # an unreadable image must not choose the size or colour of the readable ones: decode again
            chosen = decoding.choose_settings(headers, kept, size, colour)
            kept, _ = decoding.decode_into(tmp, files, kept, chosen[0], chosen[1], progress)
        skipped += failed
        if not any(i < n_train for i in kept):
            raise VaekitError(f"no training image of {root} could be read")
        os.replace(tmp, npy)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".compact").unlink(missing_ok=True)
    if chosen[2]:
        notes.append(chosen[2])
    if skipped:
        notes.append(f"skipped {len(skipped):,} of {len(files):,} images that could not be read")
    images = np.load(npy, mmap_mode="c")
    kept_labels = np.asarray([labels[i] for i in kept], dtype=np.int64)
    lines = [f"{p.relative_to(root)}\t{error}" for p, error in skipped]
    n_train_kept = sum(1 for i in kept if i < n_train)
    names = [files[i].relative_to(root).as_posix() for i in kept]
    return FolderImages(images, kept_labels, n_train_kept, classes, notes, names), lines


def _check_skipped(root: Path, files: list[Path], skipped: list[tuple[Path, str]], kept: list[int]) -> None:
    if kept and len(skipped) <= MAX_SKIPPED_FRACTION * len(files):
        return
    path, error = skipped[0]
    raise VaekitError(
        f"{len(skipped):,} of {len(files):,} images of {root} could not be read "
        f"(first: {path.relative_to(root)}: {error})"
    )


def _describe_cache(
    built: FolderImages, npy: Path, description: Path, key: str, root: Path, skipped: list[str]
) -> None:
    """Write the skipped list and then the description that vouches for the images; remove older caches
    of the same folder."""
    skipped_log = npy.with_suffix(".skipped.txt")
    if skipped:
        write_text(skipped_log, "".join(line + "\n" for line in skipped))
        built.notes[-1] += f" (listed in {skipped_log})"
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "root": str(root),
        "shape": list(built.images.shape),
        "bytes": npy.stat().st_size,
        "n_train": built.n_train,
        "classes": built.classes,
        "labels": built.labels.tolist(),
        "notes": built.notes,
        "names": built.names,
    }
    write_json(description, meta)
    prefix = npy.stem.rsplit("-", 1)[0] + "-"
    for stale in npy.parent.glob(prefix + "*"):
        if not stale.name.startswith(npy.stem + "."):
            stale.unlink(missing_ok=True)
