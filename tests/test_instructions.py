"""Tests for ftutils.instructions: the instruction set's splits, the answer-only labels, answer parsing."""

import pytest

from ftutils import instructions


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
    whole = len(instructions.chat_features([conversation], tokenizer, 512)["input_ids"][0])
    with pytest.raises(ValueError, match=rf"max_length=10 cuts away the whole answer of 1 of 1 .*raise it to {whole}"):
        instructions.chat_features([conversation], tokenizer, 10, require_answer=True)


def test_chat_features_reject_a_conversation_without_an_answer(tokenizer):
    with pytest.raises(ValueError, match="end with the assistant"):
        instructions.chat_features([instructions.messages("Hi")], tokenizer, 32)


@pytest.mark.parametrize("generated, expected", [
    ("spam", "spam"), ("Not spam.", "not spam"), ("This is spammy", None), ("", None),
    ("spam, not spam", "spam"),  # the first named answer counts
])
def test_parse_choice(generated, expected):
    assert instructions.parse_choice(generated, ["not spam", "spam"]) == expected


@pytest.mark.parametrize("task, output, answer, expected", [
    ("sentiment", "Positive.", "positive", (True, True)),
    ("sentiment", "negative", "positive", (True, False)),
    ("sentiment", "The review is positive", "positive", (False, False)),  # explains instead of answering
    ("sentiment", "positively", "positive", (False, False)),  # a whole word only
    ("spam", "Not spam", "not spam", (True, True)),
    ("spam", "spam", "not spam", (True, False)),
    ("entities", "person: Ada; geo-loc: London", "geo-loc: london; person:  Ada", (True, True)),
    ("entities", "none", "none", (True, True)),
    ("entities", "none", "person: Ada", (True, False)),
    ("entities", "Ada and London", "person: Ada", (False, False)),
    ("translation", "Enregistrer", "enregistrer", (True, True)),
    ("translation", "", "Enregistrer", (False, False)),
])
def test_judge_compliance_and_correctness(task, output, answer, expected):
    verdict = instructions.judge(task, output, answer)
    assert (verdict["compliant"], verdict["correct"]) == expected


def test_judge_names_an_unknown_task():
    with pytest.raises(ValueError, match="Unknown task 'poetry'"):
        instructions.judge("poetry", "x", "y")


def test_entity_answer_matches_the_tagged_spans():
    names = ["O", "B-person", "I-person", "B-geo-loc", "I-geo-loc"]
    assert instructions.entity_answer(["Ada", "Lovelace", "in", "London"], [1, 2, 0, 3], names) == \
        "person: Ada Lovelace; geo-loc: London"
    assert instructions.entity_answer(["nothing", "here"], [0, 0], names) == "none"


def test_respond_and_run_tests_keep_the_order_and_judge_each_answer(tokenizer, tiny):
    split = instructions.build(pools(6), n_train=2, n_test=3, held_out=None, seed=0)
    rows = split["test"]
    side = tokenizer.padding_side
    tests = instructions.run_tests(tiny, tokenizer, rows, max_new_tokens={"sentiment": 3, "spam": 3, "translation": 5})
    assert list(tests["prompt"]) == [r["prompt"] for r in rows]
    alone = instructions.respond(tiny, tokenizer, [rows[0]["prompt"]], max_new_tokens=3)
    assert tests.iloc[0]["output"] == alone[0]  # batching and left padding do not change greedy answers
    for row, test in zip(rows, tests.itertuples()):
        assert (test.compliant, test.correct) == tuple(instructions.judge(row["task"], test.output, row["answer"]).values())
    assert tokenizer.padding_side == side  # left padding for generation only
    table = instructions.summarise(tests, n_resamples=100)
    assert list(table.index) == ["sentiment", "spam", "translation"] and set(table["n"]) == {3}


def test_trl_sft_trainer_and_ftutils_make_the_same_step(tokenizer, tiny):
    """The chapter's claim on a tiny decoder: same ids, same answer-only loss, the same Adam step."""
    trl = pytest.importorskip("trl")
    import copy
    import tempfile

    from datasets import Dataset

    from ftutils import trainer

    conversations = [r["messages"] for r in instructions.build(pools(8), n_train=4, n_test=0, held_out=None, seed=0)["train"]][:6]
    start = {k: v.detach().clone() for k, v in tiny.named_parameters()}
    by_trl, by_ftutils = copy.deepcopy(tiny), copy.deepcopy(tiny)
    with tempfile.TemporaryDirectory() as scratch:
        sft = trl.SFTTrainer(
            model=by_trl, processing_class=tokenizer,
            train_dataset=Dataset.from_list([{"prompt": c[:1], "completion": c[1:]} for c in conversations]),
            args=trl.SFTConfig(output_dir=scratch, max_steps=1, per_device_train_batch_size=len(conversations),
                               learning_rate=1e-3, lr_scheduler_type="constant", completion_only_loss=True,
                               max_length=128, gradient_checkpointing=False, optim="adamw_torch", use_cpu=True,
                               bf16=False, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True))
        trl_loss = sft.train().training_loss
        trl_ids = sorted(map(list, sft.train_dataset["input_ids"]))
    ours = instructions.chat_features(conversations, tokenizer, 128)
    run = trainer.train(by_ftutils, ours, tokenizer=tokenizer, config=trainer.TrainingConfig(
        max_steps=1, batch_size=len(conversations), learning_rate=1e-3, lr_scheduler="constant", eval_strategy="no",
        progress=False))
    assert trl_ids == sorted(ours["input_ids"])
    assert run.history[-1]["train_loss"] == pytest.approx(trl_loss, rel=1e-4)
    assert trainer.relative_update_gap(start, by_ftutils, by_trl) < 0.1
    assert trainer.relative_update_gap(start, by_ftutils, tiny) == pytest.approx(1.0)  # an untrained model: no match
