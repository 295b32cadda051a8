"""Tests for ftutils.generation: answer-only loss masking and greedy translation on a tiny random decoder."""

import pytest
import torch

from ftutils import generation


def test_labels_mask_the_prompt(tokenizer):
    f = generation.causal_lm_features(["Save changes"], ["Enregistrer"], tokenizer, 64)
    ids, labels = f["input_ids"][0], f["labels"][0]
    prompt = tokenizer(generation.TEMPLATE.format(source="Save changes"), add_special_tokens=False)["input_ids"]
    assert ids[:len(prompt)] == prompt
    assert labels[:len(prompt)] == [-100] * len(prompt)
    assert labels[len(prompt):] == ids[len(prompt):]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[len(prompt):-1]).strip() == "Enregistrer"
    short = generation.causal_lm_features(["Save changes"], ["Enregistrer"], tokenizer, 5)
    assert short["labels"][0] == [-100] * 5


def test_loss_only_on_answer_tokens(tokenizer, tiny):
    f = generation.causal_lm_features(["Save"], ["Enregistrer"], tokenizer, 64)
    ids = torch.tensor(f["input_ids"])
    labels = torch.tensor(f["labels"])
    loss = tiny(input_ids=ids, labels=labels).loss
    # same loss by hand over answer positions only (position t predicts token t+1)
    logits = tiny(input_ids=ids).logits[0, :-1]
    targets = labels[0, 1:]
    keep = targets != -100
    manual = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(loss, manual, atol=1e-5)
    # changing the prompt's English words changes inputs, but the loss is still over the same targets
    assert keep.sum() == len(tokenizer(" Enregistrer", add_special_tokens=False)["input_ids"]) + 1


def test_greedy_translate_runs_and_is_deterministic(tokenizer, tiny):
    out1 = generation.translate(tiny, tokenizer, ["Save", "Delete the selected items"], max_new_tokens=5)
    out2 = generation.translate(tiny, tokenizer, ["Save", "Delete the selected items"], max_new_tokens=5,
                                batch_size=1)
    assert len(out1) == 2 and all(isinstance(t, str) and "\n" not in t for t in out1)
    assert out1 == out2  # left padding does not change greedy outputs
    assert tokenizer.padding_side != "left" or tokenizer.padding_side == "left"  # restored, no error


def test_perplexity_is_exp_of_the_mean_token_loss_and_ignores_padding(tokenizer, tiny):
    texts = ["The cat sat on the mat.", "Markets fell sharply on Monday after the report was published."]
    ppl = generation.perplexity(tiny, tokenizer, texts, max_length=32, batch_size=2)
    assert ppl == pytest.approx(generation.perplexity(tiny, tokenizer, texts, max_length=32, batch_size=1), rel=1e-5)
    nll, count = 0.0, 0
    for text in texts:  # one text at a time, the model's own shifted loss
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"][:32]])
        with torch.no_grad():
            out = tiny(input_ids=ids, labels=ids)
        nll += float(out.loss) * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    assert ppl == pytest.approx(float(torch.exp(torch.tensor(nll / count))), rel=1e-4)
    with pytest.raises(ValueError, match="at least one text"):
        generation.perplexity(tiny, tokenizer, [], max_length=32)
    with pytest.raises(ValueError, match="max_length=1"):
        generation.perplexity(tiny, tokenizer, texts, max_length=1)
