"""Tests for ftutils.instructions: the instruction set's splits, the answer-only labels, answer parsing."""

import pytest
import transformers

from ftutils import instructions, models


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(models.resolve("smollm2-135m"))


def pools(n=20):
    return {"sentiment": ([f"review {i}" for i in range(n)], ["positive" if i % 2 else "negative" for i in range(n)]),
            "spam": ([f"mail {i}" for i in range(n)], ["spam" if i % 3 else "not spam" for i in range(n)]),
            "translation": ([f"word {i}" for i in range(n)], [f"mot {i}" for i in range(n)])}


def test_build_keeps_the_held_out_task_out_of_training_and_splits_do_not_overlap():
    split = instructions.build(pools(), n_train=8, n_test=5, held_out="translation", seed=0)
    assert {r["task"] for r in split["train"]} == {"sentiment", "spam"}
    assert sum(r["task"] == "translation" for r in split["test"]) == 5
    for task in ("sentiment", "spam"):
        train = {r["prompt"] for r in split["train"] if r["task"] == task}
        test = {r["prompt"] for r in split["test"] if r["task"] == task}
        assert len(train) == 8 and len(test) == 5 and not train & test
    row = split["train"][0]
    assert row["messages"] == [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["answer"]}]
    assert len({r["template"] for r in split["train"]}) > 1  # several phrasings, not one


def test_build_is_seeded_per_task():
    a = instructions.build(pools(), n_train=8, n_test=5, held_out=None, seed=0)
    b = instructions.build({k: v for k, v in pools().items() if k != "spam"}, n_train=8, n_test=5, held_out=None, seed=0)
    c = instructions.build(pools(), n_train=8, n_test=5, held_out=None, seed=1)
    only = lambda split, task: [r["prompt"] for r in split["train"] if r["task"] == task]
    assert only(a, "sentiment") == only(b, "sentiment")  # adding a task leaves the others' draws alone
    assert only(a, "sentiment") != only(c, "sentiment")


@pytest.mark.parametrize("kwargs, message", [
    (dict(pools={"poetry": (["a"], ["b"])}), "Unknown task"),
    (dict(pools={"sentiment": (["a"], ["meh"])}), "allows the answers"),
    (dict(pools={"sentiment": (["a", "b"], ["positive"])}), "one answer per text"),
    (dict(pools={"sentiment": (["a"], ["positive"])}, held_out="spam"), "held_out='spam'"),
])
def test_build_names_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        instructions.build(**{"n_train": 1, "n_test": 1, "held_out": None, "seed": 0, **kwargs})


def test_every_template_fills_text_and_choices():
    for task in instructions.TASKS.values():
        for k in range(len(task.templates)):
            prompt = task.prompt("XYZ", template=k)
            assert "XYZ" in prompt and "{" not in prompt
    with pytest.raises(ValueError, match="expected 0 to 2"):
        instructions.TASKS["sentiment"].prompt("x", template=3)


def test_chat_features_put_the_loss_on_the_answer_and_its_end_of_turn(tokenizer):
    conversation = instructions.messages("Is this movie review positive or negative?\n\nA gem.", "positive")
    f = instructions.chat_features([conversation], tokenizer, 512)
    ids, labels = f["input_ids"][0], f["labels"][0]
    whole = tokenizer.apply_chat_template(conversation, tokenize=False)
    assert tokenizer.decode(ids) == whole  # nothing lost or added by tokenising in two parts
    answer = [i for i, label in zip(ids, labels) if label != instructions.IGNORE]
    assert [label for label in labels if label != instructions.IGNORE] == answer
    text = tokenizer.decode(answer)
    assert text.startswith("positive") and tokenizer.eos_token in text  # SmolLM2: "positive<|im_end|>\n"
    assert "A gem" not in text and labels[0] == instructions.IGNORE
    cut = instructions.chat_features([conversation], tokenizer, 10)
    assert len(cut["input_ids"][0]) == 10 and set(cut["labels"][0]) == {instructions.IGNORE}


def test_chat_features_reject_a_conversation_without_an_answer(tokenizer):
    with pytest.raises(ValueError, match="end with the assistant"):
        instructions.chat_features([instructions.messages("Hi")], tokenizer, 32)


@pytest.mark.parametrize("generated, expected", [
    ("spam", "spam"), ("Not spam.", "not spam"), ("This is spammy", None), ("", None),
    ("spam, not spam", "spam"),  # the first named answer counts
])
def test_parse_choice(generated, expected):
    assert instructions.parse_choice(generated, ["not spam", "spam"]) == expected
