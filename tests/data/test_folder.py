"""folder:PATH datasets: layout, formats and colour, resizing, the memory-mapped cache, and bad input."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit.data.decode as decode_module
from tests.conftest import error_of
from vaekit.data import DATASETS, check_dataset_name, load_dataset
from vaekit.data.folder import MAX_SIDE, load_folder


# ------------------------------------------------------------------------------------------ helpers
def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    """Write ``array`` ([H, W] grey, [H, W, 3] RGB, [H, W, 4] RGBA); the suffix picks the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, **kwargs)
    return path


def grey(value: int, size: tuple[int, int] = (6, 6)) -> np.ndarray:
    return np.full(size, value, dtype=np.uint8)


def rgb(colour: tuple[int, int, int], size: tuple[int, int] = (6, 6)) -> np.ndarray:
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (*size, 3)).copy()


def load(root: Path, tmp_path: Path, lines: list[str] | None = None, **kwargs):
    """load_dataset on folder ``root`` with its cache in tmp_path/cache."""
    log = (lambda line: None) if lines is None else lines.append
    return load_dataset("folder:" + str(root), tmp_path / "cache", progress=False, log=log, **kwargs)


def everything(data) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of a dataset, train rows first."""
    return torch.cat([data.train.images, data.test.images]), torch.cat([data.train.labels, data.test.labels])


def levels(images: torch.Tensor) -> list[int]:
    """The grey level of each (solid) image."""
    return [int(v) for v in images[:, 0, 0, 0]]


def cache_files(tmp_path: Path, pattern: str = "*") -> list[Path]:
    folder = tmp_path / "cache" / "folders"
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def truncated_png(path: Path, shape: tuple[int, ...] = (6, 6)) -> Path:
    """A PNG of noise cut in half: its header reads, its pixels do not."""
    save(path, np.random.default_rng(0).integers(0, 256, shape))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def random_jpg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes())
    return path


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A small valid PNG whose IHDR says ``width`` x ``height`` (CRC fixed): PIL reads the size only."""
    save(path, grey(7, (4, 4)))
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------------------------------- layout
def test_labelled_folder_sorted_classes_and_right_labels(tmp_path):
    root = tmp_path / "pics"
    value = {"zebra": 30, "ant": 120, "cat": 210}
    for name, level in value.items():
        for i in range(4):
            save(root / name / f"{i}.png", grey(level))
    data = load(root, tmp_path)
    assert data.classes == ["ant", "cat", "zebra"]
    assert data.name == "folder:" + str(root.resolve())
    images, labels = everything(data)
    assert len(images) == 12 and images.dtype == torch.uint8 and labels.dtype == torch.int64
    for level, label in zip(levels(images), labels.tolist(), strict=True):
        assert data.classes[label] == {v: k for k, v in value.items()}[level]
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4


def test_known_colour_image_pixels(tmp_path):
    root = tmp_path / "pics"
    for i in range(3):
        save(root / f"{i}.png", rgb((200, 100, 50), (5, 7)))
    images, _ = everything(load(root, tmp_path))
    assert images.shape == (3, 3, 5, 7)
    assert images[:, 0].eq(200).all() and images[:, 1].eq(100).all() and images[:, 2].eq(50).all()


def test_flat_folder_is_unlabelled(tmp_path):
    root = tmp_path / "flat"
    for i in range(5):
        save(root / f"{i}.png", grey(10 * i))
    data = load(root, tmp_path)
    images, labels = everything(data)
    assert data.classes == [] and data.num_classes == 0
    assert labels.tolist() == [-1] * 5
    assert sorted(levels(images)) == [0, 10, 20, 30, 40]


@pytest.mark.parametrize("train_folder", ["", "train"])
def test_test_folder_gives_the_test_split_exactly(tmp_path, train_folder):
    root = tmp_path / "pics"
    for c, name in enumerate(["a", "b"]):
        for i in range(3):
            save(root / train_folder / name / f"{i}.png", grey(10 + 10 * c + i))
            save(root / "test" / name / f"{i}.png", grey(200 + 10 * c + i))
    data = load(root, tmp_path)
    assert data.classes == ["a", "b"]
    assert levels(data.test.images) == [200, 201, 202, 210, 211, 212]
    assert data.test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert levels(data.train.images) == [10, 11, 12, 20, 21, 22]
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_test_folder_with_fewer_classes_keeps_training_indices(tmp_path):
    root = tmp_path / "pics"
    for c, name in enumerate(["a", "b", "c"]):
        save(root / name / "x.png", grey(10 * c))
    save(root / "test" / "c" / "y.png", grey(99))
    data = load(root, tmp_path)
    assert data.classes == ["a", "b", "c"]
    assert levels(data.test.images) == [99] and data.test.labels.tolist() == [2]


@pytest.mark.parametrize("train_folder", ["", "train"])
def test_flat_folder_with_test_folder(tmp_path, train_folder):
    root = tmp_path / "flat"
    for i in range(4):
        save(root / train_folder / f"{i}.png", grey(i))
    save(root / "test" / "t.png", grey(77))
    data = load(root, tmp_path)
    assert data.classes == [] and levels(data.test.images) == [77]
    assert sorted(levels(data.train.images)) == [0, 1, 2, 3]
    assert data.test.labels.tolist() == [-1] and data.train.labels.tolist() == [-1] * 4


def test_held_out_split_is_seeded_disjoint_and_ten_percent(tmp_path):
    root = tmp_path / "flat"
    for i in range(30):
        save(root / f"{i:02d}.png", grey(5 * i))
    first = load(root, tmp_path)
    again = load_dataset("folder:" + str(root), tmp_path / "other-cache", progress=False, log=lambda _: None)
    assert len(first.test) == 3 and len(first.train) == 27
    assert torch.equal(first.test.images, again.test.images)
    assert torch.equal(first.train.images, again.train.images)
    train, test = set(levels(first.train.images)), set(levels(first.test.images))
    assert not train & test and train | test == {5 * i for i in range(30)}
    assert sorted(test) != [0, 5, 10] and sorted(test) != [135, 140, 145]  # drawn, not the first or last


def test_nested_images_count_and_hidden_entries_are_ignored(tmp_path):
    root = tmp_path / "pics"
    save(root / "a" / "top.png", grey(1))
    save(root / "a" / "deeper" / "deepest" / "nested.png", grey(2))
    save(root / "b" / "one.png", grey(3))
    save(root / "b" / ".hidden.png", grey(100))
    save(root / "b" / ".thumbs" / "thumb.png", grey(101))
    save(root / ".trash" / "gone.png", grey(102))
    data = load(root, tmp_path)
    images, labels = everything(data)
    assert data.classes == ["a", "b"]
    assert sorted(zip(levels(images), labels.tolist(), strict=True)) == [(1, 0), (2, 0), (3, 1)]


def test_class_folder_without_images_is_noted_and_skipped(tmp_path):
    root = tmp_path / "pics"
    save(root / "a" / "x.png", grey(1))
    save(root / "c" / "y.png", grey(2))
    (root / "b").mkdir()
    (root / "b" / "readme.txt").write_text("nothing here")
    data = load(root, tmp_path)
    assert data.classes == ["a", "c"]
    assert sorted(everything(data)[1].tolist()) == [0, 1]
    assert any("has no images; skipped" in note and "b" in note for note in data.notes)


# ------------------------------------------------------------------------------- formats and colour
@pytest.mark.parametrize(
    ("suffix", "kwargs", "tolerance"),
    [(".png", {}, 0), (".bmp", {}, 0), (".jpg", {"quality": 95}, 4), (".webp", {"lossless": True}, 0)],
)
def test_formats(tmp_path, suffix, kwargs, tolerance):
    root = tmp_path / "pics"
    for i in range(3):
        save(root / f"{i}{suffix.upper() if i == 0 else suffix}", rgb((200, 100, 50), (16, 16)), **kwargs)
    images, _ = everything(load(root, tmp_path))
    assert images.shape == (3, 3, 16, 16)
    expected = torch.tensor([200, 100, 50]).view(1, 3, 1, 1)
    assert (images.int() - expected).abs().max() <= tolerance


def test_grey_images_default_to_one_channel(tmp_path):
    root = tmp_path / "pics"
    save(root / "a.png", grey(40))
    save(root / "b.jpg", grey(90, (6, 6)), quality=95)
    save(root / "c.bmp", grey(140))
    images, _ = everything(load(root, tmp_path))
    assert images.shape == (3, 1, 6, 6)
    assert sorted(images.float().mean((1, 2, 3)).tolist()) == pytest.approx([40, 90, 140], abs=3)


def test_one_colour_image_makes_the_set_rgb(tmp_path):
    root = tmp_path / "pics"
    save(root / "a.png", grey(40))
    save(root / "b.png", grey(60))
    save(root / "c.png", rgb((255, 0, 0)))
    images, _ = everything(load(root, tmp_path))
    assert images.shape == (3, 3, 6, 6)
    as_lists = sorted(images[:, :, 0, 0].tolist())
    assert as_lists == [[40, 40, 40], [60, 60, 60], [255, 0, 0]]


def test_rgba_is_composited_onto_black(tmp_path):
    pixels = np.zeros((2, 3, 4), dtype=np.uint8)
    pixels[..., 0] = 255  # red everywhere
    pixels[0, :, 3] = 0  # top row fully transparent
    pixels[1, 0, 3], pixels[1, 1, 3], pixels[1, 2, 3] = 255, 128, 255
    root = tmp_path / "pics"
    for i in range(2):
        save(root / f"{i}.png", pixels)
    images, _ = everything(load(root, tmp_path))
    assert images.shape == (2, 3, 2, 3)
    red = images[0, 0]
    assert red[0].tolist() == [0, 0, 0]  # fully transparent red -> black
    assert red[1, 0] == 255 and red[1, 2] == 255 and abs(int(red[1, 1]) - 128) <= 1
    assert images[:, 1:].eq(0).all()


PALETTE = np.array([[0, 0, 0], [10, 200, 30], [250, 5, 100]], dtype=np.uint8)
INDICES = np.array([[1, 1, 2, 2], [1, 2, 0, 1]], dtype=np.uint8)


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_images(tmp_path, transparent):
    image = Image.fromarray(INDICES, mode="P")
    image.putpalette(PALETTE.flatten().tolist())
    root = tmp_path / "pics"
    root.mkdir()
    for i in range(2):
        image.save(root / f"{i}.png", **({"transparency": 2} if transparent else {}))  # index 2 see-through
    images, _ = everything(load(root, tmp_path))
    assert images.shape == (2, 3, 2, 4)
    expected = PALETTE[INDICES].transpose(2, 0, 1).copy()
    if transparent:
        expected[:, INDICES == 2] = 0
    assert np.array_equal(images[0].numpy(), expected) and np.array_equal(images[1].numpy(), expected)


def test_colour_grey_converts_colour_images(tmp_path):
    root = tmp_path / "pics"
    for i in range(2):
        save(root / f"{i}.png", rgb((200, 100, 50)))
    images, _ = everything(load(root, tmp_path, colour="grey"))
    assert images.shape == (2, 1, 6, 6)
    luma = 200 * 0.299 + 100 * 0.587 + 50 * 0.114
    assert (images.float() - luma).abs().max() <= 1


def test_colour_rgb_converts_grey_images(tmp_path):
    root = tmp_path / "pics"
    for i in range(2):
        save(root / f"{i}.png", grey(77))
    images, _ = everything(load(root, tmp_path, colour="rgb"))
    assert images.shape == (2, 3, 6, 6) and images.eq(77).all()


# -------------------------------------------------------------------------------------------- sizes
def banded(path: Path) -> Path:
    """40 wide x 20 high: the left and right quarters black, the middle half white."""
    pixels = np.zeros((20, 40), dtype=np.uint8)
    pixels[:, 10:30] = 255
    return save(path, pixels)


@pytest.mark.parametrize("size", [10, "10", "10x10", [10, 10]])
def test_resize_centre_crops_to_the_aspect(tmp_path, size):
    root = tmp_path / "pics"
    for i in range(2):
        banded(root / f"{i}.png")
    images, _ = everything(load(root, tmp_path, image_size=size))
    assert images.shape == (2, 1, 10, 10)
    # The centre square is white; squashing would keep the black quarters (about 2.5 columns a side).
    # Only the filter's reach past the crop box may darken the outermost columns a little.
    assert images[..., 1:-1].min() >= 250 and images.min() >= 200


def test_resize_height_by_width_keeps_the_whole_image_at_its_aspect(tmp_path):
    root = tmp_path / "pics"
    for i in range(2):
        banded(root / f"{i}.png")
    images, _ = everything(load(root, tmp_path, image_size="10x20"))
    assert images.shape == (2, 1, 10, 20)  # height 10, width 20
    row = images[0, 0, 5]
    assert row[:4].max() <= 5 and row[-4:].max() <= 5 and row[6:14].min() >= 250


def test_mixed_sizes_go_to_the_most_common_with_a_note(tmp_path):
    root = tmp_path / "pics"
    for i in range(3):
        save(root / f"common{i}.png", grey(100, (8, 12)))  # 8 high, 12 wide
    save(root / "odd.png", grey(100, (30, 30)))
    data = load(root, tmp_path)
    images, _ = everything(data)
    assert images.shape == (4, 1, 8, 12)
    assert images.eq(100).all()
    assert any("2 sizes" in note and "8x12" in note for note in data.notes)


def test_one_size_has_no_resize_note(tmp_path):
    root = tmp_path / "pics"
    for i in range(3):
        save(root / f"{i}.png", grey(100, (8, 12)))
    assert load(root, tmp_path).notes == []


# -------------------------------------------------------------------------------------------- cache
def refuse_to_decode(monkeypatch) -> None:
    """From now on, reading an image's header or pixels fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decode_module, "decode_image", refuse)
    monkeypatch.setattr(decode_module, "open_header", refuse)


def test_second_load_reads_the_cache_without_decoding(tmp_path, monkeypatch):
    root = tmp_path / "pics"
    for i in range(5):
        save(root / f"{i}.png", grey(20 * i))
    lines: list[str] = []
    first = load(root, tmp_path, lines)
    assert any(line.startswith("decoding 5 images") for line in lines)
    refuse_to_decode(monkeypatch)
    lines.clear()
    second = load(root, tmp_path, lines)
    assert lines == []
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.test.images, second.test.images)
    assert torch.equal(first.train.labels, second.train.labels)


def test_images_are_memory_mapped(tmp_path):
    root = tmp_path / "pics"
    for i in range(4):
        save(root / f"{i}.png", grey(i))
    for _ in range(2):  # built, then read from the cache
        loaded = load_folder(root, tmp_path / "cache", progress=False, log=lambda _: None)
        assert isinstance(loaded.images, np.memmap)
        assert Path(loaded.images.filename) == cache_files(tmp_path, "*.npy")[0]
        assert loaded.images.shape == (4, 1, 6, 6) and loaded.n_train == 3


def test_changed_file_makes_a_new_cache_and_drops_the_old(tmp_path):
    root = tmp_path / "pics"
    for i in range(4):
        save(root / f"{i}.png", grey(10))
    load(root, tmp_path)
    [old_npy] = cache_files(tmp_path, "*.npy")
    save(root / "2.png", grey(99))
    os.utime(root / "2.png", ns=(1_000_000_000, 1_000_000_000))
    lines: list[str] = []
    images, _ = everything(load(root, tmp_path, lines))
    assert any(line.startswith("decoding") for line in lines)
    assert sorted(levels(images)) == [10, 10, 10, 99]
    [new_npy] = cache_files(tmp_path, "*.npy")
    assert new_npy != old_npy and not old_npy.exists()
    assert len(cache_files(tmp_path, "*.json")) == 1


def test_added_file_makes_a_new_cache_and_drops_the_old(tmp_path):
    root = tmp_path / "pics"
    for i in range(4):
        save(root / f"{i}.png", grey(10))
    load(root, tmp_path)
    [old_npy] = cache_files(tmp_path, "*.npy")
    save(root / "new.png", grey(50))
    images, _ = everything(load(root, tmp_path))
    assert sorted(levels(images)) == [10, 10, 10, 10, 50]
    assert [p.suffix for p in cache_files(tmp_path)] == [".json", ".npy"]
    assert not old_npy.exists()


def test_other_settings_keep_their_own_caches(tmp_path, monkeypatch):
    root = tmp_path / "pics"
    for i in range(3):
        save(root / f"{i}.png", grey(10, (12, 12)))
    load(root, tmp_path)
    load(root, tmp_path, image_size=6)
    load(root, tmp_path, colour="rgb")
    assert len(cache_files(tmp_path, "*.npy")) == 3 and len(cache_files(tmp_path, "*.json")) == 3
    refuse_to_decode(monkeypatch)  # all three are read back
    assert load(root, tmp_path).image_shape == (1, 12, 12)
    assert load(root, tmp_path, image_size=6).image_shape == (1, 6, 6)
    assert load(root, tmp_path, colour="rgb").image_shape == (3, 12, 12)


def _cached_folder(tmp_path: Path) -> tuple[Path, list[int]]:
    root = tmp_path / "pics"
    for i in range(6):
        save(root / f"{i}.png", grey(30 * i, (8, 8)))
    data = load(root, tmp_path)
    return root, levels(everything(data)[0])


@pytest.mark.parametrize("keep", [lambda n: n // 2, lambda n: n - 1, lambda n: 60, lambda n: 3])
def test_truncated_cache_is_rebuilt(tmp_path, keep):
    """Cut in the data, by one byte, in the header, in the magic string."""
    root, expected = _cached_folder(tmp_path)
    [npy] = cache_files(tmp_path, "*.npy")
    size = npy.stat().st_size
    os.truncate(npy, keep(size))
    lines: list[str] = []
    data = load(root, tmp_path, lines)
    assert any(line.startswith("decoding") for line in lines)
    assert levels(everything(data)[0]) == expected
    assert npy.stat().st_size == size


def test_empty_cache_file_is_rebuilt(tmp_path):
    root, expected = _cached_folder(tmp_path)
    [npy] = cache_files(tmp_path, "*.npy")
    os.truncate(npy, 0)  # a crash after the rename, before the data reached the disk
    assert levels(everything(load(root, tmp_path))[0]) == expected


@pytest.mark.parametrize("garbage", [b'{"version": 1, "key', b"\x00" * 64, b"\xff\xfe not json"])
def test_garbled_description_is_rebuilt(tmp_path, garbage):
    root, expected = _cached_folder(tmp_path)
    [description] = cache_files(tmp_path, "*.json")
    description.write_bytes(garbage)
    lines: list[str] = []
    data = load(root, tmp_path, lines)
    assert any(line.startswith("decoding") for line in lines)
    assert levels(everything(data)[0]) == expected
    assert b'"key"' in description.read_bytes()


@pytest.mark.parametrize("garbage", ["null", "[1, 2]"])
def test_description_that_is_not_an_object_is_rebuilt(tmp_path, garbage):
    root, expected = _cached_folder(tmp_path)
    [description] = cache_files(tmp_path, "*.json")
    description.write_text(garbage)
    assert levels(everything(load(root, tmp_path))[0]) == expected


def test_description_of_another_cache_is_not_trusted(tmp_path):
    root, expected = _cached_folder(tmp_path)
    [npy] = cache_files(tmp_path, "*.npy")
    np.save(npy, np.zeros((6, 1, 4, 4), dtype=np.uint8))  # a whole .npy, but not the one described
    data = load(root, tmp_path)
    assert data.image_shape == (1, 8, 8) and levels(everything(data)[0]) == expected


# --------------------------------------------------------------------------------- unreadable files
def test_corrupt_images_are_skipped_counted_and_listed(tmp_path):
    root = tmp_path / "pics"
    for i in range(20):
        save(root / f"good{i:02d}.png", grey(100))
    truncated_png(root / "half.png")
    random_jpg(root / "noise.jpg")
    data = load(root, tmp_path)
    images, _ = everything(data)
    assert len(images) == 20 and images.shape[1:] == (1, 6, 6) and images.eq(100).all()
    [note] = [n for n in data.notes if "skipped" in n]
    assert "skipped 2 of 22 images" in note
    [skipped_log] = cache_files(tmp_path, "*.skipped.txt")
    assert str(skipped_log) in note
    listed = {line.split("\t")[0] for line in skipped_log.read_text().splitlines()}
    assert listed == {"half.png", "noise.jpg"}
    assert load(root, tmp_path).notes == data.notes  # the cached load says the same


def test_unreadable_image_does_not_choose_colour_or_size(tmp_path):
    root = tmp_path / "pics"
    for i in range(20):
        save(root / f"good{i:02d}.png", grey(100))
    truncated_png(root / "half.png", (32, 32, 3))
    data = load(root, tmp_path)
    assert data.image_shape == (1, 6, 6)
    assert not any("sizes" in note for note in data.notes)


@pytest.mark.parametrize("make_bad", [truncated_png, random_jpg])
def test_too_many_corrupt_images_is_an_error_and_leaves_nothing(tmp_path, make_bad):
    root = tmp_path / "pics"
    for i in range(5):
        save(root / f"good{i}.png", grey(100))
    suffix = ".png" if make_bad is truncated_png else ".jpg"
    for i in range(2):
        make_bad(root / f"bad{i}{suffix}")
    message = error_of(load, root, tmp_path)
    assert "2 of 7 images" in message and "could not be read" in message
    assert f"(first: bad0{suffix}: " in message or f"(first: bad1{suffix}: " in message
    leftovers = [p for p in (tmp_path / "cache").rglob("*")] if (tmp_path / "cache").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_no_readable_training_image_is_an_error_and_leaves_nothing(tmp_path):
    root = tmp_path / "pics"
    for i in range(10):
        save(root / "test" / "a" / f"{i}.png", grey(i))
    truncated_png(root / "a" / "only.png")  # 1 of 11 unreadable: under the limit, but all of training
    assert "no training image" in error_of(load, root, tmp_path)
    assert cache_files(tmp_path) == []


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [10_000, 100_000])  # over PIL's limit; over twice it (PIL refuses)
def test_decompression_bomb_is_skipped(tmp_path, side):
    root = tmp_path / "pics"
    for i in range(10):
        save(root / f"good{i}.png", grey(100))
    png_claiming_size(root / "bomb.png", side, side)
    data = load(root, tmp_path)
    assert len(everything(data)[0]) == 10
    assert any("skipped 1 of 11" in note for note in data.notes)
    [skipped_log] = cache_files(tmp_path, "*.skipped.txt")
    [line] = skipped_log.read_text().splitlines()
    name, error = line.split("\t")
    assert name == "bomb.png"
    assert "decompression bomb" in error.lower() and "pixel" in error and "limit" in error


# ---------------------------------------------------------------------------------------- bad input
def test_missing_path(tmp_path):
    message = error_of(load, tmp_path / "nowhere", tmp_path)
    assert "does not exist" in message and "nowhere" in message


def test_path_that_is_a_file(tmp_path):
    path = save(tmp_path / "one.png", grey(1))
    message = error_of(load, path, tmp_path)
    assert "is a file" in message and "folder" in message


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    message = error_of(load, tmp_path / "empty", tmp_path)
    assert message.startswith("no images") and ".png" in message and "other files" not in message


def test_folder_of_other_files(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "notes.txt").write_text("hello")
    (root / "table.csv").write_text("a,b\n1,2\n")
    (root / "sub").mkdir()
    (root / "sub" / "more.txt").write_text("more")
    message = error_of(load, root, tmp_path)
    assert message.startswith("no images") and "3 other files" in message


def test_empty_test_folder(tmp_path):
    root = tmp_path / "pics"
    save(root / "a.png", grey(1))
    (root / "test").mkdir()
    message = error_of(load, root, tmp_path)
    assert "no images" in message and "test" in message


def test_only_a_test_folder(tmp_path):
    root = tmp_path / "pics"
    for i in range(3):
        save(root / "test" / f"{i}.png", grey(i))
    message = error_of(load, root, tmp_path)
    assert "no training images" in message and "only its test/ folder has images" in message


def test_test_folder_with_a_class_training_lacks(tmp_path):
    root = tmp_path / "pics"
    save(root / "train" / "a" / "x.png", grey(1))
    save(root / "train" / "c" / "x.png", grey(1))
    save(root / "test" / "a" / "y.png", grey(1))
    save(root / "test" / "b" / "z.png", grey(1))
    message = error_of(load, root, tmp_path)
    assert "classes that training lacks: b" in message


def test_test_folder_without_classes_beside_labelled_training(tmp_path):
    root = tmp_path / "pics"
    save(root / "a" / "x.png", grey(1))
    save(root / "b" / "x.png", grey(1))
    save(root / "test" / "y.png", grey(1))
    assert "disagree" in error_of(load, root, tmp_path)


@pytest.mark.parametrize("layout", ["one class folder", "images beside class folders"])
def test_a_folder_of_pictures_that_is_not_one_of_classes_is_read_whole_and_unlabelled(tmp_path, layout):
    """~/Pictures: some images loose, some in a subfolder or two; labels would be wrong, so none."""
    root = tmp_path / "pics"
    save(root / "holiday" / "x.png", grey(1))
    save(root / "holiday" / "deeper" / "y.png", grey(2))
    if layout == "images beside class folders":
        save(root / "work" / "z.png", grey(3))
        save(root / "loose.png", grey(4))
    data = load(root, tmp_path)
    n = 2 if layout == "one class folder" else 4
    assert data.classes == [] and len(data.train) + len(data.test) == n
    assert set(data.train.labels.tolist() + data.test.labels.tolist()) == {-1}
    assert any("read as one unlabelled set" in note for note in data.notes)


@pytest.mark.parametrize("size", [0, -3, "abc", 5000, MAX_SIDE + 1, "10x", "0x10", "10x20x30", "-4"])
def test_bad_image_size(tmp_path, size):
    root = tmp_path / "pics"
    save(root / "a.png", grey(1))
    message = error_of(load, root, tmp_path, image_size=size)
    assert "image size" in message and repr(size) in message


def test_max_side_is_allowed(tmp_path):
    root = tmp_path / "pics"
    save(root / "a.png", grey(1, (4, 8)))
    save(root / "b.png", grey(1, (4, 8)))
    assert load(root, tmp_path, image_size=f"2x{MAX_SIDE}").image_shape == (1, 2, MAX_SIDE)


def test_unknown_colour(tmp_path):
    root = tmp_path / "pics"
    save(root / "a.png", grey(1))
    message = error_of(load, root, tmp_path, colour="purple")
    assert "'purple'" in message and "grey" in message and "rgb" in message
    message = error_of(load_folder, root, tmp_path / "cache", colour="purple", progress=False)
    assert "'purple'" in message


def test_folder_options_on_named_datasets(tmp_path):
    assert "digits" in error_of(load_dataset, "digits", tmp_path / "cache", colour="grey")
    message = error_of(load_dataset, "mnist", tmp_path / "cache", image_size=32)
    assert "--image-size" in message and "mnist" in message


def test_folder_name_needs_a_path():
    assert "needs a path" in error_of(check_dataset_name, "folder:")


def test_folder_name_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_dataset_name("folder:pics") == "folder:" + str((tmp_path / "pics").resolve())


def test_unknown_dataset_lists_the_choices():
    message = error_of(load_dataset, "cifar10")
    assert "'cifar10'" in message and "folder:PATH" in message
    for name in DATASETS:
        assert name in message
