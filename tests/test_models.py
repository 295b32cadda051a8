"""Tests for ftutils.models: registry names, local folders, task heads, GGUF conversion, errors.

The MiniLM tests are fast (a load takes under a second). SmolLM2 tests are marked slow: the first one
run on a fresh cache converts the GGUF (about a minute on 2 cores), later loads take seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import transformers

from ftutils import assets, models
from ftutils.trainer import predict

LABELS = ["negative", "positive", "neutral"]
TEXTS = ["a gripping, beautifully shot film", "dull"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _forward(model: torch.nn.Module, tokenizer, texts=TEXTS, **kwargs):
    batch = tokenizer(list(texts), return_tensors="pt", padding=True, **kwargs)
    model.eval()
    with torch.no_grad():
        return model(**batch), batch


# ------------------------------------------------------------------------------------- MiniLM heads

def test_sequence_classification_head_has_the_labels_and_is_the_only_new_part() -> None:
    model, tokenizer = models.load("minilm", "sequence-classification", labels=LABELS)
    out, _ = _forward(model, tokenizer)
    assert out.logits.shape == (2, 3)
    assert model.config.id2label == dict(enumerate(LABELS))
    assert model.config.label2id["neutral"] == 2
    assert models.new_parameter_names(model) == ["classifier.weight", "classifier.bias"]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_mean_pooling_head_classifies_the_pretrained_mean_and_drops_the_unused_pooler() -> None:
    model, tokenizer = models.load("minilm", "sequence-classification", labels=LABELS, pooling="mean")
    base, _ = models.load("minilm", "base")
    assert isinstance(model, models.MeanPoolingClassifier)
    assert models.new_parameter_names(model) == ["classifier.weight", "classifier.bias"]
    assert model.config.id2label == dict(enumerate(LABELS))
    # The [CLS] pooler would get no gradient (an error under DDP), so it is gone; the rest is the checkpoint.
    assert not any("pooler" in n for n, _ in model.named_parameters())
    for name, param in model.encoder.named_parameters():
        assert torch.equal(param, base.get_parameter(name)), name
    out, batch = _forward(model, tokenizer)
    hidden = base(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = model.classifier((hidden * mask).sum(1) / mask.sum(1))
    assert torch.allclose(out.logits, expected, atol=1e-5)
    loss = model(**batch, labels=torch.tensor([0, 2])).loss
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_mean_pooling_from_scratch_lists_every_parameter_as_new() -> None:
    model, _ = models.load("minilm", "sequence-classification", num_labels=2, pooling="mean", pretrained=False)
    assert models.new_parameter_names(model) == [n for n, _ in model.named_parameters()]


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(task="sequence-classification", pooling="max"), "Unknown pooling 'max': expected one of 'model', 'mean'"),
    (dict(task="token-classification", pooling="mean"), "applies to task 'sequence-classification' only"),
])
def test_bad_pooling_is_rejected_with_the_choices(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        models.load("minilm", **kwargs)


def test_token_classification_gives_one_score_per_token_and_label() -> None:
    model, tokenizer = models.load("minilm", "token-classification", num_labels=5)
    out, batch = _forward(model, tokenizer)
    assert out.logits.shape == (*batch["input_ids"].shape, 5)
    assert model.ftutils_new_parameters == ("classifier.weight", "classifier.bias")


def test_question_answering_scores_start_and_end_of_every_token() -> None:
    model, tokenizer = models.load("minilm", "question-answering")
    out, batch = _forward(model, tokenizer)
    assert out.start_logits.shape == out.end_logits.shape == batch["input_ids"].shape
    assert models.new_parameter_names(model) == ["qa_outputs.weight", "qa_outputs.bias"]


def test_pretrained_encoder_weights_are_the_checkpoint_not_random() -> None:
    base, tokenizer = models.load("minilm", "base")
    classifier, _ = models.load("minilm", "sequence-classification", num_labels=2)
    assert base.ftutils_new_parameters == ()
    for name, param in base.named_parameters():
        assert torch.equal(param, classifier.get_parameter(f"bert.{name}")), name
    # The checkpoint is a sentence encoder: paraphrases are closer than unrelated text.
    out, batch = _forward(base, tokenizer, ["a cat sat on the mat", "a kitten sat on the rug",
                                            "stock markets fell sharply"])
    mask = batch["attention_mask"].unsqueeze(-1)
    emb = torch.nn.functional.normalize((out.last_hidden_state * mask).sum(1) / mask.sum(1), dim=-1)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_from_scratch_has_the_same_architecture_and_only_new_parameters() -> None:
    torch.manual_seed(0)
    scratch, _ = models.load("minilm", "sequence-classification", num_labels=2, pretrained=False)
    pretrained, _ = models.load("minilm", "sequence-classification", num_labels=2)
    assert type(scratch) is type(pretrained)
    assert models.count_parameters(scratch) == models.count_parameters(pretrained)
    assert models.new_parameter_names(scratch) == [n for n, _ in scratch.named_parameters()]
    word = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(scratch.get_parameter(word), pretrained.get_parameter(word))


def test_dtype_is_honoured() -> None:
    model, _ = models.load("minilm", "base", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_saved_checkpoint_reloads_from_its_folder(tmp_path: Path) -> None:
    model, tokenizer = models.load("minilm", "sequence-classification", labels=LABELS)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again, tokenizer2 = models.load(str(tmp_path), "sequence-classification")
    assert again.ftutils_new_parameters == ()  # the head comes from the checkpoint now
    assert again.config.id2label == dict(enumerate(LABELS))
    assert torch.allclose(_forward(model, tokenizer)[0].logits, _forward(again, tokenizer2)[0].logits)
    # Asking for a different label set replaces the head, and says so.
    other, _ = models.load(str(tmp_path), "sequence-classification", labels=["a", "b"])
    assert other.ftutils_new_parameters == ("classifier.weight", "classifier.bias")


# -------------------------------------------------------------------------------- inspection helpers

def test_count_parameters_by_block_covers_every_parameter_once() -> None:
    model, _ = models.load("minilm", "sequence-classification", num_labels=2)
    blocks = models.count_parameters(model)
    assert sum(blocks.values()) == sum(p.numel() for p in model.parameters())
    assert list(blocks)[0] == "bert.embeddings" and list(blocks)[-1] == "classifier"
    assert [b for b in blocks if ".layer." in b] == [f"bert.encoder.layer.{i}" for i in range(6)]
    assert len({blocks[f"bert.encoder.layer.{i}"] for i in range(6)}) == 1  # identical layers
    assert blocks["classifier"] == 384 * 2 + 2
    assert models.count_parameters(model, by="top") == {"bert": sum(blocks.values()) - 770,
                                                        "classifier": 770}
    with pytest.raises(ValueError, match="by='layer'.*block, top"):
        models.count_parameters(model, by="layer")


def test_describe_names_architecture_size_new_parameters_and_labels() -> None:
    model, _ = models.load("minilm", "sequence-classification", labels=["neg", "pos"])
    text = models.describe(model)
    assert text.splitlines()[0].startswith("BertForSequenceClassification (bert): 6 layers, 384 hidden")
    total = sum(p.numel() for p in model.parameters())
    assert f"{total:,}" in text and "float32" in text
    assert "2 tensors, 770 parameters: classifier.weight, classifier.bias" in text
    assert "0=neg, 1=pos" in text


def test_new_parameter_names_needs_a_model_loaded_here() -> None:
    with pytest.raises(ValueError, match="Linear.*ftutils.models.load"):
        models.new_parameter_names(torch.nn.Linear(2, 2))


# -------------------------------------------------------------------------------------- bad input

def test_unknown_task_lists_the_tasks() -> None:
    with pytest.raises(ValueError, match="'summarization'.*sequence-classification.*causal-lm"):
        models.load("minilm", "summarization")


def test_unknown_name_offline_fails_at_once_and_explains_the_choices() -> None:
    started = time.perf_counter()
    with pytest.raises(models.UnknownModelError) as info:
        models.load("bert-base-uncased", "sequence-classification")
    assert time.perf_counter() - started < 5, "must not wait on hub retries"
    message = str(info.value)
    assert "'bert-base-uncased'" in message and "minilm" in message and "smollm2-135m" in message
    assert "local folder" in message and "HF_HUB_OFFLINE='1'" in message


def test_hub_is_never_probed_when_offline_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("probed the network although HF_HUB_OFFLINE=1")

    monkeypatch.setattr(models.socket, "create_connection", no_network)
    assert models._hub_reachable() is False


def test_missing_folder_and_folder_without_config_are_explained(tmp_path: Path) -> None:
    with pytest.raises(models.UnknownModelError, match="folder './no/such/model' does not exist"):
        models.load("./no/such/model", "base")
    (tmp_path / "weights.txt").write_text("")
    with pytest.raises(models.UnknownModelError, match="has no config.json.*save_pretrained"):
        models.load(str(tmp_path), "base")
    with pytest.raises(models.UnknownModelError, match="not a .gguf model"):
        models.load(str(tmp_path / "weights.txt"), "base")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_labels": 0}, "num_labels=0 .*positive integer"),
        ({"labels": ["a", "a"]}, "distinct"),
        ({"labels": "ab"}, "list of class-name strings"),
        ({"num_labels": 3, "labels": ["a", "b"]}, "num_labels=3 disagrees with 2 labels"),
        ({"dtype": "float32"}, "torch floating dtype"),
    ],
)
def test_bad_label_and_dtype_arguments_are_rejected(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        models.load("minilm", "sequence-classification", **kwargs)


def test_labels_for_a_task_without_classes_are_rejected() -> None:
    with pytest.raises(ValueError, match="only apply to .* not task 'question-answering'"):
        models.load("minilm", "question-answering", num_labels=2)


def test_encoder_refuses_causal_lm_and_points_to_the_decoder() -> None:
    with pytest.raises(ValueError, match="'minilm' does not support task 'causal-lm'.*smollm2-135m"):
        models.load("minilm", "causal-lm")


def test_empty_name_is_rejected() -> None:
    with pytest.raises(models.UnknownModelError, match="non-empty string"):
        models.load("", "base")


# ------------------------------------------------------------------------------------- heads and features

def _tiny_bert() -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=2,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return transformers.BertForSequenceClassification(cfg)


def _first_token_task(n: int) -> datasets.Dataset:
    """Label 1 iff the first word is token 7 (else 8)."""
    rng = np.random.default_rng(2)
    ids, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        ids.append([1, 7 if label else 8, *rng.integers(10, 60, size=int(rng.integers(3, 12))).tolist(), 2])
        labels.append(label)
    return datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(s) for s in ids],
                                       "labels": labels})


def test_mean_pooled_features_ignores_padding():
    model = transformers.BertModel(transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                                           num_attention_heads=2, intermediate_size=16))

    class Tok:
        def __call__(self, texts, padding=True, truncation=True, max_length=8, return_tensors="pt"):
            n = max(len(t) for t in texts)
            ids = [[1 + ord(c) % 28 for c in t] + [0] * (n - len(t)) for t in texts]
            mask = [[1] * len(t) + [0] * (n - len(t)) for t in texts]
            return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}

    together = models.mean_pooled_features(model, Tok(), ["ab", "abcdef"], max_length=8)
    alone = models.mean_pooled_features(model, Tok(), ["ab"], max_length=8)
    assert np.allclose(together[0], alone[0], atol=1e-5)  # padding does not change a text's vector


def test_init_head_from_probe_starts_fine_tuning_from_a_fitted_head():
    torch.manual_seed(0)
    model = _tiny_bert()
    data = _first_token_task(80)
    model.eval()
    head = models.head_module(model)
    old = head.weight.detach().clone()
    train_acc = models.init_head_from_probe(model, data, C=10.0)
    after = float(np.mean(predict(model, data).argmax(-1) == np.array(data["labels"])))
    assert not torch.equal(old, head.weight)
    assert after == pytest.approx(train_acc, abs=1e-6)  # the head now *is* the probe: same predictions
    assert after >= 0.5


def test_mean_pooling_classifier_ignores_padding_and_lists_its_head():
    torch.manual_seed(0)
    encoder = transformers.BertModel(transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                                             num_attention_heads=2, intermediate_size=16))
    model = models.MeanPoolingClassifier(encoder, num_labels=2).eval()
    short = model(torch.tensor([[1, 5, 6]]), attention_mask=torch.tensor([[1, 1, 1]])).logits
    padded = model(torch.tensor([[1, 5, 6, 0, 0]]), attention_mask=torch.tensor([[1, 1, 1, 0, 0]])).logits
    assert torch.allclose(short, padded, atol=1e-5)
    out = model(torch.tensor([[1, 5, 6]]), labels=torch.tensor([1]))
    assert out.loss.ndim == 0 and out.loss.requires_grad
    assert models.head_module(model) is model.classifier
    assert set(model.ftutils_new_parameters) == {n for n, _ in model.named_parameters() if n.startswith("classifier.")}


# ----------------------------------------------------------------------------------------- SmolLM2

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def smollm_folder() -> Path:
    return models.resolve("smollm2-135m")  # converts once per cache, then returns at once


@pytest.mark.slow
def test_converted_smollm2_is_a_plain_fp32_safetensors_folder(smollm_folder: Path, monkeypatch) -> None:
    names = {p.name for p in smollm_folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not any(n.endswith(".gguf") for n in names)
    assert smollm_folder.parent == assets.cache_dir() / "converted"
    # A converted model is not converted again (asked of the code, not of a clock on a busy machine).
    monkeypatch.setattr(models, "_convert_into", lambda *a, **k: pytest.fail("converted the GGUF again"))
    assert models.resolve("smollm2-135m") == smollm_folder
    model, tokenizer = models.load("smollm2-135m", "causal-lm")
    assert not hasattr(model.config, "quantization_config")
    assert model.config.tie_word_embeddings
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.ftutils_new_parameters == ()
    assert tokenizer.chat_template, "the instruct model's chat template must survive conversion"


@pytest.mark.slow
def test_converted_smollm2_matches_the_gguf_next_token_logits(smollm_folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = assets.path("smollm2-135m")
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    ref_tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model, tokenizer = models.load("smollm2-135m", "causal-lm")
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, ref_tokenizer(PROMPT, return_tensors="pt")["input_ids"])
    with torch.no_grad():
        expected = reference(input_ids=ids).logits[0, -1]
        actual = model.eval()(input_ids=ids).logits[0, -1]
    assert torch.allclose(actual, expected, atol=1e-4, rtol=0), (actual - expected).abs().max()
    assert tokenizer.decode(actual.argmax()).strip() == "Paris"


@pytest.mark.slow
def test_smollm2_as_a_classifier_pools_the_last_real_token() -> None:
    model, tokenizer = models.load("smollm2-135m", "sequence-classification", labels=["neg", "pos"])
    assert tokenizer.pad_token is not None
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert models.new_parameter_names(model) == ["score.weight"]
    out, batch = _forward(model, tokenizer)
    assert out.logits.shape == (2, 2)
    assert batch["attention_mask"][1].sum() < batch["attention_mask"].shape[1], "no padding tested"
    # A padded row must score exactly as it does alone.
    alone, _ = _forward(model, tokenizer, TEXTS[1:])
    assert torch.allclose(out.logits[1], alone.logits[0], atol=1e-4)


@pytest.fixture(scope="module")
def smollm_base():
    return models.load("smollm2-135m", "base")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["token-classification", "question-answering"])
def test_smollm2_other_heads_load_the_pretrained_backbone(task: str, smollm_base) -> None:
    base, tokenizer = smollm_base
    assert base.ftutils_new_parameters == ()
    kwargs = {"num_labels": 3} if task == "token-classification" else {}
    model, _ = models.load("smollm2-135m", task, **kwargs)
    heads = {"token-classification": ("score.weight", "score.bias"),
             "question-answering": ("qa_outputs.weight", "qa_outputs.bias")}
    # transformers' Llama QA head calls its backbone "transformer.", not "model.": still loaded.
    assert model.ftutils_new_parameters == heads[task]
    backbone = dict(model.base_model.named_parameters())
    for name, param in base.named_parameters():
        assert torch.equal(param, backbone[name]), name
    out, batch = _forward(model, tokenizer)
    if task == "question-answering":
        assert out.start_logits.shape == batch["input_ids"].shape
    else:
        assert out.logits.shape == (*batch["input_ids"].shape, 3)


# ------------------------------------------------------------------- conversion bookkeeping (fast)

@pytest.fixture()
def fake_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of our own and a stand-in for the slow dequantisation, to test the bookkeeping."""
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF not really")
    return gguf


def test_convert_gguf_writes_once_into_a_content_named_folder(fake_gguf: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_convert(source: Path, out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_into", fake_convert)
    folder = models.convert_gguf(fake_gguf)
    assert folder == assets.cache_dir() / "converted" / f"tiny-{assets.sha256_of(fake_gguf)[:12]}"
    assert (folder / "config.json").is_file() and calls[0] != folder  # written elsewhere, renamed
    assert models.convert_gguf(fake_gguf) == folder and len(calls) == 1
    assert [p.name for p in folder.parent.iterdir()] == [folder.name], "staging folder left behind"


def test_conversion_leaves_the_global_random_state_as_it_found_it(fake_gguf: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A cold cache converts, a warm one does not: what runs next must not see the difference.
    def drawing_convert(source: Path, out: Path) -> None:
        torch.nn.Linear(64, 64)  # initialising weights draws from the global generator
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_into", drawing_convert)
    torch.manual_seed(11)
    expected = torch.randn(3)
    torch.manual_seed(11)
    models.convert_gguf(fake_gguf)
    assert torch.equal(torch.randn(3), expected)


def test_special_tokens_follow_the_gguf_metadata():
    tokenizer = transformers.AutoTokenizer.from_pretrained(models.resolve("smollm2-135m"))
    ids = models.gguf_special_token_ids(assets.path("smollm2-135m"))
    assert ids["eos"] == tokenizer.eos_token_id and ids["pad"] == tokenizer.pad_token_id
    # What transformers 4.56-5.17 produced: eos <|im_start|> (id 1). The file's ids put it right.
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(1)
    models.set_special_tokens(tokenizer, ids)
    assert tokenizer.eos_token_id == ids["eos"] == 2


def test_converted_folder_is_keyed_by_the_transformers_version():
    assert f"transformers-{transformers.__version__}" in models.resolve("smollm2-135m").name


def test_a_changed_converted_file_is_converted_again(fake_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_convert(source: Path, out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(models, "_convert_into", fake_convert)
    folder = models.convert_gguf(fake_gguf)
    (folder / "model.safetensors").write_bytes(b"weightz")  # same size, one byte changed
    assert models.convert_gguf(fake_gguf) == folder and len(calls) == 2
    assert (folder / "model.safetensors").read_bytes() == b"weights"


def test_failed_conversion_leaves_nothing_and_incomplete_folders_are_redone(
        fake_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(source: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(models, "_convert_into", crash)
    dest = assets.cache_dir() / "converted" / "tiny"
    with pytest.raises(RuntimeError, match="mid-way"):
        models.convert_gguf(fake_gguf, dest)
    assert list(dest.parent.iterdir()) == []
    dest.mkdir()  # e.g. copied by hand without the completion marker
    monkeypatch.setattr(models, "_convert_into", lambda src, out: (out / "config.json").write_text("{}"))
    assert models.convert_gguf(fake_gguf, dest) == dest
    assert (dest / models._CONVERTED_MARKER).is_file()


def test_unreachable_hub_is_detected_quickly_without_offline_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nobody listens
    started = time.perf_counter()
    with pytest.raises(models.UnknownModelError, match="'someone/some-model'.*not reachable"):
        models.resolve("someone/some-model")
    assert time.perf_counter() - started < 5


@pytest.mark.slow
def test_backbone_is_loaded_even_without_the_key_mapping(smollm_base, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_backbone_key_mapping", lambda auto, config: {})
    model, _ = models.load("smollm2-135m", "question-answering")
    assert model.ftutils_new_parameters == ("qa_outputs.weight", "qa_outputs.bias")
    word = "embed_tokens.weight"
    assert torch.equal(model.base_model.get_parameter(word), smollm_base[0].get_parameter(word))


def test_sentence_features_rejects_an_unknown_pooling_naming_the_choices():
    from ftutils.models import sentence_features

    with pytest.raises(ValueError, match="pooling='max' is not allowed: expected 'mean' or 'cls'"):
        sentence_features(None, None, ["a"], max_length=8, pooling="max")


def test_levels_per_block_counts_distinct_values_per_block():
    import torch as _torch
    grid = _torch.arange(16.0).repeat(4)  # 64 values, 16 distinct in each block of 32
    assert models.levels_per_block(grid).tolist() == [16, 16]
    assert models.levels_per_block(_torch.linspace(0, 1, 64)).tolist() == [32, 32]
    with pytest.raises(ValueError, match="blocks of 32"):
        models.levels_per_block(_torch.zeros(40))
