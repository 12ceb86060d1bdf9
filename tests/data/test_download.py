import gzip
import hashlib

import pytest

from vaekit.data import load_dataset
from vaekit.data.download import download
from vaekit.utils.errors import VaekitError


def _serve(root, name: str, data: bytes) -> str:
    (root / name).write_bytes(data)
    return hashlib.md5(data).hexdigest()


def test_good_file(http_server, tmp_path):
    url, root = http_server
    md5 = _serve(root, "a.gz", b"hello" * 1000)
    dest = download([url + "a.gz"], tmp_path / "cache" / "a.gz", md5)
    assert dest.read_bytes() == b"hello" * 1000


def test_wrong_checksum_leaves_nothing(http_server, tmp_path):
    url, root = http_server
    _serve(root, "a.gz", b"tampered")
    folder = tmp_path / "cache"
    with pytest.raises(VaekitError, match="checksum mismatch"):
        download([url + "a.gz"], folder / "a.gz", hashlib.md5(b"original").hexdigest())
    assert not folder.exists()  # neither the file nor a temporary file, nor the folder the write made


def test_server_error_then_next_mirror(http_server, tmp_path):
    url, root = http_server
    md5 = _serve(root, "a.gz", b"payload")
    dest = download([url + "error/a.gz", url + "a.gz"], tmp_path / "a.gz", md5)
    assert dest.read_bytes() == b"payload"


def test_all_mirrors_failing(http_server, tmp_path):
    url, _ = http_server
    with pytest.raises(VaekitError, match=r"could not download a.gz: .*HTTP 500.*HTTP 404"):
        download([url + "error/a.gz", url + "missing/a.gz"], tmp_path / "a.gz", "0" * 32)
    assert not (tmp_path / "a.gz").exists()


def test_mnist_downloads_official_files_from_a_mirror(http_server, tmp_path, monkeypatch, shared_mnist):
    """The real MNIST test files, checked against the official md5s; the shared training files are a
    12,000-image re-pack, so their official checksum must fail."""
    url, root = http_server
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (root / name).write_bytes((shared_mnist / name).read_bytes())
    (root / "train-images-idx3-ubyte.gz").write_bytes(
        (shared_mnist / "train-images-idx3-ubyte.gz").read_bytes()
    )
    monkeypatch.setenv("VAEKIT_MIRROR", url)
    cache = tmp_path / "fresh-cache"
    with pytest.raises(VaekitError, match="checksum mismatch for .*train-images"):
        load_dataset("mnist", cache)
    assert not (cache / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_mnist_download_end_to_end(http_server, tmp_path, monkeypatch, shared_mnist):
    """With checksums that match what the mirror serves, a fresh cache fills and then loads offline."""
    from vaekit.data import mnist

    url, root = http_server
    md5 = {}
    for name in mnist.MNIST.md5:
        data = (shared_mnist / name).read_bytes()
        (root / name).write_bytes(data)
        md5[name] = hashlib.md5(data).hexdigest()
    assert md5["t10k-images-idx3-ubyte.gz"] == mnist.MNIST.md5["t10k-images-idx3-ubyte.gz"]
    spec = mnist.IdxSpec("mnist", "MNIST", (url,), md5)
    monkeypatch.setitem(mnist.IDX_SPECS, "mnist", spec)
    cache = tmp_path / "fresh-cache"
    data = load_dataset("mnist", cache)
    assert len(data.train) == 12000 and len(data.test) == 10000
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == sorted(md5)
    for p in (cache / "mnist").iterdir():  # stored as served: gzip, verified
        assert gzip.decompress(p.read_bytes())[:3] == b"\x00\x00\x08"
    for p in root.iterdir():
        p.unlink()  # the server has nothing now: a second load must not need it
    assert len(load_dataset("mnist", cache).test) == 10000
