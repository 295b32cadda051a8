"""Tests for ftutils.multilingual: measuring [UNK], and extending a vocabulary with new characters."""

import numpy as np
import pytest
import torch
import transformers

from ftutils import anatomy, models, multilingual

NEW = "𠀋"  # a CJK character (extension B) that MiniLM's vocabulary lacks


@pytest.fixture(scope="module")
def minilm():
    tokenizer = transformers.AutoTokenizer.from_pretrained(models.resolve("minilm"))
    model = transformers.AutoModelForTokenClassification.from_pretrained(models.resolve("minilm"), num_labels=3)
    return tokenizer, model


def test_unknown_token_rate_with_minilm(minilm):
    tok, _ = minilm
    english = multilingual.unknown_token_rate(tok, ["a gorgeous, witty film"])
    assert english["unk_rate"] == 0.0
    mixed = multilingual.unknown_token_rate(tok, ["质量很好 ☃☃ 𠀋𠀋"])
    assert mixed["unk_rate"] > 0 and mixed["texts_with_unk"] == 1.0


def test_char_bigrams():
    assert multilingual.char_bigrams("很 好用") == "很好 好用"
    assert multilingual.char_bigrams("") == ""


def _anchors(tokenizer, n):
    """n CJK characters that are whole tokens of the vocabulary, in a fixed order."""
    vocab = tokenizer.get_vocab()
    return sorted(c for c in vocab if len(c) == 1 and multilingual.is_cjk(c))[:n]


def _corpus(anchors, twin_of, n_sentences=600, seed=0):
    """Sentences over ``anchors`` where NEW replaces ``twin_of`` half the time: NEW is used like it."""
    rng = np.random.default_rng(seed)
    # each anchor has two favourite right neighbours, so contexts differ between characters
    follow = {a: [anchors[(i + 1) % len(anchors)], anchors[(i + 7) % len(anchors)]] for i, a in enumerate(anchors)}
    texts = []
    for _ in range(n_sentences):
        char, sentence = anchors[rng.integers(len(anchors))], []
        for _ in range(12):
            sentence.append(NEW if char == twin_of and rng.random() < 0.5 else char)
            char = follow[char][rng.integers(2)] if rng.random() < 0.9 else anchors[rng.integers(len(anchors))]
        texts.append("".join(sentence))
    return texts


def test_missing_characters_lists_only_unknown_cjk(minilm):
    tok, _ = minilm
    known = _anchors(tok, 1)[0]
    assert multilingual.missing_characters(tok, [f"{known}{NEW}{NEW} abc"]) == [NEW]
    assert multilingual.missing_characters(tok, [f"{known}{NEW}"], min_count=2) == []


def test_extension_removes_unk_and_keeps_old_ids(minilm):
    tok, model = minilm
    anchors = _anchors(tok, 40)
    texts = _corpus(anchors, anchors[5])
    before = multilingual.unknown_token_rate(tok, texts)["unk_rate"]
    ext = multilingual.extend_vocabulary(tok, model, texts, dim=20)
    assert before > 0.01 and multilingual.unknown_token_rate(ext.tokenizer, texts)["unk_rate"] == 0.0
    assert ext.new_tokens == [NEW] and ext.anchors == 40 and len(ext.tokenizer) == len(tok) + 1
    assert len(tok) == ext.tokenizer.vocab_size  # the original tokenizer is not changed
    sample = f"a witty film {anchors[0]}{anchors[3]}"
    assert ext.tokenizer(sample)["input_ids"] == tok(sample)["input_ids"]
    assert ext.tokenizer.convert_tokens_to_ids(NEW) == len(tok)


def test_aligned_row_lands_near_the_character_it_is_used_like(minilm):
    tok, model = minilm
    anchors = _anchors(tok, 40)
    twin = anchors[5]
    ext = multilingual.extend_vocabulary(tok, model, _corpus(anchors, twin), dim=20)
    table = model.get_input_embeddings().weight.detach()
    ids = tok.convert_tokens_to_ids(anchors)
    cosine = torch.nn.functional.cosine_similarity(ext.rows[0][None], table[ids])
    assert anchors[int(cosine.argmax())] == twin, cosine
    assert abs(ext.rows[0].norm() - table[ids].norm(dim=1).mean()) < 1e-3  # rescaled to the anchors' norm
    mean = multilingual.extend_vocabulary(tok, model, _corpus(anchors, twin), init="mean")
    assert torch.allclose(mean.rows[0], table.mean(0), atol=1e-6)


def test_apply_keeps_old_rows_marks_the_table_and_round_trips(minilm, tmp_path):
    tok, model = minilm
    anchors = _anchors(tok, 40)
    ext = multilingual.extend_vocabulary(tok, model, _corpus(anchors, anchors[5]), dim=20)
    old = model.get_input_embeddings().weight.detach().clone()
    fresh = transformers.AutoModelForTokenClassification.from_pretrained(models.resolve("minilm"), num_labels=3)
    anatomy.mark_new_parameters(fresh, ["classifier.weight", "classifier.bias"])
    ext.apply(fresh)
    table = fresh.get_input_embeddings().weight.detach()
    assert table.shape[0] == len(tok) + 1
    assert torch.equal(table[:-1], old) and torch.equal(table[-1], ext.rows[0])
    assert anatomy.marked_new_parameters(fresh) == ("classifier.weight", "classifier.bias",
                                                     "bert.embeddings.word_embeddings.weight")
    text = f"{anchors[0]}{NEW}{anchors[1]}"
    fresh.save_pretrained(tmp_path)
    ext.tokenizer.save_pretrained(tmp_path)
    assert sorted(p.suffix for p in tmp_path.glob("model*")) == [".safetensors"]
    again_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    again = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path)
    batch = again_tok(text, return_tensors="pt")
    assert batch["input_ids"].tolist() == ext.tokenizer(text, return_tensors="pt")["input_ids"].tolist()
    assert len(tok) in batch["input_ids"][0].tolist()
    fresh.eval(), again.eval()
    with torch.no_grad():
        assert torch.allclose(fresh(**batch).logits, again(**batch).logits, atol=1e-5)


def test_extension_errors_name_the_fix(minilm):
    tok, model = minilm
    anchors = _anchors(tok, 40)
    texts = _corpus(anchors, anchors[5])
    with pytest.raises(ValueError, match="'aligned', 'mean'"):
        multilingual.extend_vocabulary(tok, model, texts, init="random")
    with pytest.raises(ValueError, match="nothing to add"):
        multilingual.extend_vocabulary(tok, model, ["a witty film", anchors[0] * 3])
    with pytest.raises(ValueError, match='use init="mean"'):
        multilingual.extend_vocabulary(tok, model, [f"{anchors[0]}{NEW}{anchors[1]}"])
    ext = multilingual.extend_vocabulary(tok, model, texts, dim=20)
    ext.apply(grown := transformers.AutoModelForTokenClassification.from_pretrained(models.resolve("minilm")))
    with pytest.raises(ValueError, match="build it from this model's own tokenizer"):
        ext.apply(grown)


def test_character_vectors_are_seeded():
    texts = ["我爱北京天安门", "我爱上海", "你爱北京", "他去上海"] * 5
    chars, first = multilingual.character_vectors(texts, dim=4, seed=3)
    again = multilingual.character_vectors(texts, dim=4, seed=3)[1]
    assert "我" in chars and " " not in chars and np.allclose(first, again)
    with pytest.raises(ValueError, match="fewer than two"):
        multilingual.character_vectors(["好好"])


def test_apply_reaches_the_encoder_inside_a_mean_pooling_classifier(minilm):
    tok, model = minilm
    anchors = _anchors(tok, 40)
    ext = multilingual.extend_vocabulary(tok, model, _corpus(anchors, anchors[5]), dim=20)
    classifier = ext.apply(models.load("minilm", "sequence-classification", labels=["a", "b"], pooling="mean")[0])
    assert classifier.get_input_embeddings().weight.shape[0] == len(tok) + 1
    assert anatomy.marked_new_parameters(classifier) == ("classifier.weight", "classifier.bias",
                                                          "encoder.embeddings.word_embeddings.weight")
    batch = ext.tokenizer([f"{anchors[0]}{NEW}"], return_tensors="pt")
    assert classifier(**batch).logits.shape == (1, 2)
