"""Checksum-verified, atomic file downloads."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from vaekit.utils.atomic import atomic_write
from vaekit.utils.errors import VaekitError


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download(urls: Sequence[str], dest: str | os.PathLike, md5: str, timeout: float = 60.0) -> Path:
    """Fetch the first of ``urls`` that answers into ``dest``, verifying its md5.

    The file is streamed into a temporary file beside ``dest`` and renamed into place only once its
    checksum matches, so ``dest`` is never left partial or wrong. A server error moves on to the next
    mirror; a checksum mismatch is an error at once (a mirror serving other bytes is not to be trusted).
    """
    dest = Path(dest)
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:

                def write(tmp: Path, response=response, url=url) -> None:
                    digest = hashlib.md5()
                    with open(tmp, "wb") as f:
                        while chunk := response.read(1 << 20):
                            digest.update(chunk)
                            f.write(chunk)
                    if digest.hexdigest() != md5:
                        raise VaekitError(
                            f"checksum mismatch for {url}: md5 {digest.hexdigest()}, expected {md5}"
                        )

                atomic_write(dest, write)
                return dest
        except urllib.error.HTTPError as exc:
            failures.append(f"{url} (HTTP {exc.code})")
        except (urllib.error.URLError, OSError) as exc:
            failures.append(f"{url} ({getattr(exc, 'reason', exc)})")
    raise VaekitError(f"could not download {dest.name}: " + "; ".join(failures))
