"""Tests of ftutils.data on the real registry data (offline; the first run builds the caches, ~40 s)."""

from __future__ import annotations

import os

# datasets reads these when it is imported: without them a hub call retries for ~25 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import hashlib
import time
from collections import Counter

import pytest
from datasets import ClassLabel, Dataset, DatasetDict

from ftutils import assets, data

# The documented sizes (see the ftutils.data docstring): split sizes, and rows per label name.
EXPECTED = {
    "rotten_tomatoes": ((10071, 1356, 1324), {"negative": 5383, "positive": 7368}),
    "bbc_news": ((1707, 198, 219), {"business": 503, "entertainment": 369, "politics": 403,
                                    "sports": 502, "tech": 347}),
    "chn_sentiment": ((13863, 1761, 1734), {"negative": 9031, "positive": 8327}),
    "spam_assassin": ((4685, 639, 592), {"ham": 4108, "spam": 1808}),
    "wnut16": ((1840, 229, 226), None),
    "peoples_daily": ((15243, 1848, 1903), None),
    "django_po": ((648, 62, 81), None),
}


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_registry_dataset_loads_with_documented_sizes_and_no_leak(name):
    spec = data.DATASETS[name]
    dsd = data.load(name)
    assert list(dsd) == ["train", "validation", "test"]
    sizes, label_counts = EXPECTED[name]
    assert tuple(len(dsd[s]) for s in data.SPLITS) == sizes
    assert sum(sizes) == data.dedup_stats(dsd).get("kept", data.dedup_stats(dsd).get("kept_unique_sources"))
    assert 0.75 < sizes[0] / sum(sizes) < 0.85  # the 80/10/10 rule, up to hash noise

    column = spec.key_column
    seen: dict[str, str] = {}
    for split, ds in dsd.items():
        for value in ds[column]:
            key = data._key_text(value)
            assert seen.setdefault(key, split) == split, f"{value!r} is in {seen[key]} and {split}"
    if spec.task == "translation":  # deduplicated case-sensitively ("May" vs "may")
        sources = [x for ds in dsd.values() for x in ds["source"]]
        assert len(set(sources)) == len(sources)
    else:
        assert len(seen) == sum(sizes)  # and no duplicate within a split either

    features = dsd["train"].features
    if spec.task == "classification":
        assert isinstance(features["label"], ClassLabel)
        assert features["label"].names == list(spec.labels)
        totals = Counter()
        for ds in dsd.values():
            totals.update(features["label"].int2str(ds["label"]))
        assert dict(totals) == label_counts
        assert all(isinstance(t, str) and t.strip() for t in dsd["validation"]["text"])
    elif spec.task == "token-classification":
        assert features["ner_tags"].feature.names == list(spec.labels)
    else:
        assert set(features) == {"source", "target"}


def test_documented_raw_counts_and_dedup():
    assert data.dedup_stats(data.load("rotten_tomatoes"))["raw"] == 7403 + 5405  # plot rows dropped
    bbc = data.dedup_stats(data.load("bbc_news"))
    assert bbc["raw"] == 2225 and bbc["duplicates_removed"] >= 98
    chn = data.dedup_stats(data.load("chn_sentiment"))
    assert chn["raw"] == 16548 + 18576 - 1  # neg.txt has one blank line
    assert chn["conflicting_texts_dropped"] == 47
    assert data.dedup_stats(data.load("spam_assassin"))["raw"] == 6046
    assert data.dedup_stats(data.load("wnut16"))["raw"] == 2394
    assert data.dedup_stats(data.load("peoples_daily"))["raw"] == 19484


def _check_bio(dsd: DatasetDict) -> Counter:
    names = dsd["train"].features["ner_tags"].feature.names
    entities = Counter()
    for ds in dsd.values():
        for tokens, tags in zip(ds["tokens"], ds["ner_tags"]):
            assert len(tokens) == len(tags) > 0
            previous = "O"
            for tag in (names[t] for t in tags):
                if tag.startswith("I-"):
                    assert previous[2:] == tag[2:], f"{tag} after {previous} in {tokens}"
                if tag.startswith("B-"):
                    entities[tag[2:]] += 1
                previous = tag
    return entities


def test_wnut16_has_ten_entity_types_in_valid_bio():
    dsd = data.load("wnut16")
    entities = _check_bio(dsd)
    assert set(entities) == set(data.WNUT16_TYPES)
    assert 1400 < sum(entities.values()) <= 1496  # 1,496 before dropping repeated tweets


def test_peoples_daily_is_character_bio_with_merged_names():
    dsd = data.load("peoples_daily")
    entities = _check_bio(dsd)
    assert set(entities) == {"PER", "LOC", "ORG"}
    assert all(len(t) == 1 for t in dsd["validation"]["tokens"][0])
    names = dsd["train"].features["ner_tags"].feature.names
    found = 0
    for ds in dsd.values():
        for tokens, tags in zip(ds["tokens"], ds["ner_tags"]):
            text = "".join(tokens)
            at = text.find("江泽民")  # PKU writes 江/nr 泽民/nr: one person, not two
            if at >= 0:
                assert [names[t] for t in tags[at:at + 3]] == ["B-PER", "I-PER", "I-PER"]
                found += 1
    assert found > 10


def test_pku_words_handles_doc_ids_and_brackets():
    line = "19980101-01-001-001/m  [中国/ns  政府/n]nt  [三峡/ns  工程/n]n  江/nr  泽民/nr  说/v"
    assert data._pku_words(line) == [("中国政府", "nt"), ("三峡", "ns"), ("工程", "n"),
                                     ("江", "nr"), ("泽民", "nr"), ("说", "v")]


def test_wnut16_golden_train_set():
    # A regression guard: if this changes, the splits changed and every number in the book may move.
    dsd = data.load("wnut16")
    digest = hashlib.sha256("\n".join(sorted(" ".join(t) for t in dsd["train"]["tokens"])).encode())
    assert digest.hexdigest() == "bcd6cb6ecd37b0c147d765f816684c29ca34ffeb672a8178f4ca211c655366c5"


def test_loads_and_subsamples_are_deterministic():
    a = data.load("rotten_tomatoes", n_train=200, n_validation=50, n_test=50, seed=3)
    b = data.load("rotten_tomatoes", n_train=200, n_validation=50, n_test=50, seed=3)
    assert a["train"]["text"] == b["train"]["text"] and a["test"]["text"] == b["test"]["text"]
    c = data.load("rotten_tomatoes", n_train=200, seed=4)
    assert c["train"]["text"] != a["train"]["text"]
    assert len(c["validation"]) == 1356  # sizes not given: whole split
    smaller = data.load("rotten_tomatoes", n_train=50, seed=3)
    assert smaller["train"]["text"] == a["train"]["text"][:50]
    full = data.load("rotten_tomatoes")
    assert set(a["train"]["text"]) <= set(full["train"]["text"])
    # A subsample is a mix of both classes, not the head of a sorted split.
    assert 0.3 < sum(a["train"]["label"]) / 200 < 0.8


def test_split_of_agrees_with_the_built_splits():
    dsd = data.load("bbc_news")
    for split, ds in dsd.items():
        assert all(data.split_of(t) == split for t in ds.select(range(20))["text"])


def test_build_is_cached_atomically(tmp_path, monkeypatch):
    source = assets.path("wnut16")
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(data.assets, "path", lambda key: source)
    built = data.load("wnut16")
    folders = [p.name for p in (tmp_path / "datasets").iterdir()]
    assert folders == [data._cache_folder(data.DATASETS["wnut16"], dict(data.DATASETS["wnut16"].options)).name]  # no staging folder left
    monkeypatch.setitem(data._BUILDERS, "wnut16", lambda *a, **k: pytest.fail("rebuilt a cached dataset"))
    again = data.load("wnut16")
    assert again["test"]["tokens"] == built["test"]["tokens"]


def test_parse_po_reads_multiline_plural_context_and_flags():
    text = '''# comment
msgid ""
msgstr ""
"Language: fr\\n"

#, fuzzy, python-format
msgid "Old %s"
msgstr "Vieux %s"

msgctxt "month"
msgid "May"
msgstr "mai"

msgid ""
"Two "
"lines"
msgstr "Deux \\"lignes\\""
msgid "%(n)d item"
msgid_plural "%(n)d items"
msgstr[0] "%(n)d élément"
msgstr[1] "%(n)d éléments"

#~ msgid "Gone"
#~ msgstr "Parti"
'''
    entries = data.parse_po(text)
    assert [e["msgid"] for e in entries] == ["Old %s", "May", "Two lines", "%(n)d item"]
    assert entries[0]["flags"] == ("fuzzy", "python-format")
    assert entries[1]["msgctxt"] == "month"
    assert entries[2]["msgstr"] == 'Deux "lignes"'
    assert entries[3]["msgstr[1]"] == "%(n)d éléments"
    with pytest.raises(ValueError, match="line 1"):
        data.parse_po("msgid unquoted\n")


def test_django_po_filter(tmp_path):
    catalogue = tmp_path / "conf" / "locale" / "fr" / "LC_MESSAGES"
    catalogue.mkdir(parents=True)
    entries = [("Save", "Enregistrer"), ("Hello %(name)s", "Bonjour %(name)s"),
               ("Bad %(name)s", "Mauvais"), ("Empty", ""), ("Keep {0}", "Garder {0}")]
    body = "".join(f'msgid "{s}"\nmsgstr "{t}"\n\n' for s, t in entries)
    body += '#, fuzzy\nmsgid "Fuzzy"\nmsgstr "Flou"\n\nmsgid "Save"\nmsgstr "Sauver"\n\n'
    body += 'msgid "Save"\nmsgstr "Enregistrer"\n\n'
    body += 'msgid "%d file"\nmsgid_plural "%d files"\nmsgstr[0] "%d fichier"\nmsgstr[1] "%d fichiers"\n'
    (catalogue / "django.po").write_text(body, encoding="utf-8")
    spec = data.DATASETS["django_po"]
    pairs = {}
    for ds in data.load_django_po(tmp_path, spec).values():
        pairs.update(zip(ds["source"], ds["target"]))
    assert pairs == {"Save": "Enregistrer", "Hello %(name)s": "Bonjour %(name)s",
                     "Keep {0}": "Garder {0}", "%d file": "%d fichier"}
    dropped = {s for ds in data.load_django_po(tmp_path, spec, placeholders="drop").values()
               for s in ds["source"]}
    assert dropped == {"Save"}
    with pytest.raises(ValueError, match="'xx'.*fr"):
        data.load_django_po(tmp_path, spec, lang="xx")


def test_find_placeholders():
    assert data.find_placeholders("%(a)s, %s and %.2f%% of {name} {}") == Counter(
        {"%(a)s": 1, "%s": 1, "%.2f": 1, "{name}": 1, "{}": 1})
    assert not data.find_placeholders("100% sure")


def test_django_po_other_language():
    dsd = data.load("django_po", lang="de", n_train=20)
    assert len(dsd["train"]) == 20 and "Übersetzungen" not in dsd["train"]["source"]
    assert data.dedup_stats(dsd)["files"] == 12


def test_email_text_decodes_subject_and_body():
    raw = ("From x  Mon\nReceived: from relay.example\nSubject: =?utf-8?q?Caf=C3=A9?=\n"
           "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=XX\n\n--XX\n"
           "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
           "SGVsbG8gd29ybGQ=\n--XX\nContent-Type: text/html\n\n<p>ignored</p>\n--XX--\n")
    assert data.email_text(raw) == "Café\n\nHello world"
    html_only = "Subject: Deal\nContent-Type: text/html\n\n<style>p{}</style><p>Buy&nbsp;now</p><br>x"
    assert data.email_text(html_only) == "Deal\n\nBuy now\nx"


def test_spam_assassin_text_has_no_transport_headers():
    dsd = data.load("spam_assassin")
    texts = dsd["train"]["text"]
    # Every raw mail has Received: headers; a few bodies quote some (spam-filter discussions).
    assert sum("Received:" in t for t in texts) < 0.01 * len(texts)
    assert set(dsd["train"]["group"]) == {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"}
    spam = dsd["train"].features["label"].str2int("spam")
    pairs = zip(dsd["train"]["group"], dsd["train"]["label"])
    assert all(group.startswith("spam") == (label == spam) for group, label in pairs)


def test_describe_lists_sizes_and_labels():
    dsd = data.load("chn_sentiment")
    lines = data.describe(dsd).splitlines()
    assert lines[0].split() == ["split", "rows", "negative", "positive"]
    positives = sum(dsd["test"]["label"])
    n = len(dsd["test"])
    assert lines[3].split() == ["test", str(n), str(n - positives), str(positives)]
    ner = data.describe(data.load("wnut16", n_test=5)).splitlines()
    assert ner[0].split()[2] == "B-company" and "I-company" not in ner[0]
    assert ner[3].split()[1] == "5"


@pytest.mark.parametrize("kwargs, match", [
    ({"n_train": 10**6}, r"n_train=1000000 is larger than the train split .* 10071 rows"),
    ({"n_test": 0}, "n_test=0 is not allowed"),
    ({"n_validation": 2.5}, "n_validation=2.5 is not allowed"),
    ({"n_train": True}, "n_train=True is not allowed"),
    ({"seed": "1"}, "seed='1' is not allowed"),
    ({"lang": "fr"}, "Unknown option.*lang.*'rotten_tomatoes'"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load("rotten_tomatoes", **kwargs)


def test_bad_django_options():
    with pytest.raises(ValueError, match="placeholders='maybe'.*keep, drop"):
        data.load("django_po", placeholders="maybe")
    with pytest.raises(ValueError, match="lang='../fr'"):
        data.load("django_po", lang="../fr")


def test_unknown_name_offline_fails_fast_naming_the_registry():
    started = time.perf_counter()
    with pytest.raises(ValueError, match="'rotten-tomatoes'.*offline.*rotten_tomatoes, bbc_news"):
        data.load("rotten-tomatoes")
    assert time.perf_counter() - started < 15


def test_local_files_and_saved_folders_pass_through(tmp_path):
    csv_file = tmp_path / "tiny.csv"
    csv_file.write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(10)))
    dsd = data.load(str(csv_file), n_train=4, seed=1)
    assert list(dsd) == ["train"] and len(dsd["train"]) == 4
    with pytest.raises(ValueError, match="no split.*validation"):
        data.load(str(csv_file), n_validation=2)
    saved = tmp_path / "saved"
    DatasetDict({"train": Dataset.from_dict({"text": ["a", "b"]})}).save_to_disk(str(saved))
    assert data.load(str(saved))["train"]["text"] == ["a", "b"]
    Dataset.from_dict({"text": ["c"]}).save_to_disk(str(tmp_path / "one"))
    assert data.load(str(tmp_path / "one"))["train"]["text"] == ["c"]
    with pytest.raises(ValueError, match=r"\.xyz|expected a \.csv"):
        (tmp_path / "notes.xyz").write_text("x")
        data.load(str(tmp_path / "notes.xyz"))


def test_registry_builds_do_not_depend_on_file_order(tmp_path):
    # Copy bbc's topic folders with the files renamed in reverse order: same splits, same rows.
    source = assets.path("bbc_news")
    for topic in data.DATASETS["bbc_news"].labels:
        files = sorted((source / topic).glob("*.txt"))
        (tmp_path / topic).mkdir()
        for new_index, file in enumerate(reversed(files)):
            (tmp_path / topic / f"{new_index:03d}.txt").write_bytes(file.read_bytes())
    shuffled = data.load_bbc_news(tmp_path, data.DATASETS["bbc_news"])
    original = data.load("bbc_news")
    for split in data.SPLITS:
        assert shuffled[split]["text"] == original[split]["text"]


def test_dedup_stats_needs_a_registry_dataset():
    with pytest.raises(ValueError, match="not built by an ftutils registry loader"):
        data.dedup_stats(DatasetDict({"train": Dataset.from_dict({"text": ["a"]})}))


def test_cached_registry_dataset_carries_a_fingerprint_checked_on_load():
    import json

    data.load("wnut16")
    folder = data._cache_folder(data.DATASETS["wnut16"], dict(data.DATASETS["wnut16"].options))
    assert data.verify_fingerprint(folder) is None
    files = json.loads((folder / data._FINGERPRINT).read_text())["files"]
    assert any(name.endswith(".arrow") for name in files) and "dataset_dict.json" in files
    assert all(len(entry["sha256"]) == 64 for entry in files.values())


def test_cached_datasets_are_kept_apart_per_datasets_release(monkeypatch):
    # datasets 3.x cannot read the features a 4.x+ release saved: one cache shared by two runtimes
    # (Colab and a laptop, say) must not hand one the other's folder.
    spec = data.DATASETS["wnut16"]
    now = data._cache_folder(spec, dict(spec.options))
    assert now.name.endswith("-datasets" + ".".join(data.datasets.__version__.split(".")[:2]))
    monkeypatch.setattr(data.datasets, "__version__", "99.1.0")
    older = data._cache_folder(spec, dict(spec.options))
    assert older != now and older.name.endswith("-datasets99.1")
