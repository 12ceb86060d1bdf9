"""Installed entry points, read again only when what is installed can have changed."""

from __future__ import annotations

import importlib.metadata
import os
import shutil

from vaekit.utils import packages
from vaekit.utils.packages import installed_entry_points

GROUP = "vaekit.test-entry-points"


def install(site, name: str) -> None:
    """A distribution as pip leaves it: a dist-info folder declaring one entry point in GROUP."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{name} = {name}:thing\n")
    touch_later(site)


def touch_later(folder) -> None:
    """Move the folder's time one second on: a file system's clock can be coarser than these steps."""
    stat = os.stat(folder)
    os.utime(folder, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def names() -> list[str]:
    return sorted(entry.name for entry in installed_entry_points(GROUP))


def test_entry_points_are_read_once_until_an_install_or_uninstall_or_a_new_path(tmp_path, monkeypatch):
    reads = []
    read = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: reads.append(kw) or read(**kw))
    monkeypatch.setattr(packages, "_entry_points_seen", {})
    site, other = tmp_path / "site", tmp_path / "other"
    site.mkdir(), other.mkdir()
    monkeypatch.syspath_prepend(str(site))
    install(site, "first")
    assert names() == ["first"] and names() == ["first"] and len(reads) == 1  # the second is kept
    install(site, "second")
    assert names() == ["first", "second"] and len(reads) == 2
    install(other, "third")
    assert names() == ["first", "second"] and len(reads) == 2  # not on sys.path (yet)
    monkeypatch.syspath_prepend(str(other))
    assert names() == ["first", "second", "third"] and len(reads) == 3
    shutil.rmtree(site / "first-0.1.dist-info")  # uninstalled
    touch_later(site)
    assert names() == ["second", "third"] and len(reads) == 4
    assert [entry.name for entry in installed_entry_points("vaekit.no-such-group")] == [] and len(reads) == 5


def test_the_working_folder_on_sys_path_is_read_where_the_program_is(tmp_path, monkeypatch):
    monkeypatch.setattr(packages, "_entry_points_seen", {})
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    install(there, "local")
    times = os.stat(there)
    os.utime(here, ns=(times.st_atime_ns, times.st_mtime_ns))  # the two folders differ only by name
    monkeypatch.syspath_prepend("")
    monkeypatch.chdir(here)
    assert names() == []
    monkeypatch.chdir(there)  # the same sys.path, another working folder
    assert names() == ["local"]
