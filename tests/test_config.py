"""Tests of ftutils.config: the typed chapter entries, the overrides, and the values chapters ran before."""

from __future__ import annotations

import dataclasses

import pytest

from ftutils import chapter, config, data, seeding
from ftutils.config import CHAPTERS, ApplicationsValues, EvaluationValues, InstructionValues, ToolsValues, get_config
from ftutils.trainer import BOOK_FIELDS, TrainingConfig

# What each chapter ran before its values moved into ftutils.config.CHAPTERS: its CHAPTER_SIZES /
# SHORT_RUN dict on top of the config, the warm-up and head multiplier it passed to the trainer by hand,
# and its `extra` dict (chapter 6: SWEEP_LEARNING_RATE and TRIALS). Every value is written out, so a change
# is deliberate: chapter 5's tagging values (tagging_*) changed when its tagger learned nothing (issue 13).
CPU = dict(n_train=1000, n_eval=500, max_length=64, epochs=2, batch_size=32, learning_rate=5e-5, warmup=0.0,
           head_lr_multiplier=1.0, mixed_precision="no", n_seeds=3)
GPU = dict(n_train=None, n_eval=None, max_length=128, epochs=3, batch_size=32, learning_rate=5e-5, warmup=0.0,
           head_lr_multiplier=1.0, mixed_precision="bf16", n_seeds=5)
BEFORE = {
    ("02", "cpu-tiny"): ({**CPU, "batch_size": 16, "learning_rate": 1e-4}, None),
    ("02", "gpu"): (GPU, None),
    ("03", "cpu-tiny"): ({**CPU, "n_train": 384, "n_eval": 256, "max_length": 32, "epochs": 1, "batch_size": 8,
                          "learning_rate": 2e-4, "warmup": 0.1, "head_lr_multiplier": 10.0}, None),
    ("03", "gpu"): ({**GPU, "warmup": 0.1, "head_lr_multiplier": 10.0}, None),
    ("04", "cpu-tiny"): ({**CPU, "n_train": 384, "n_eval": 300, "max_length": 48, "batch_size": 16,
                          "learning_rate": 1e-4, "warmup": 0.1}, None),
    ("04", "gpu"): ({**GPU, "warmup": 0.1}, None),
    ("05", "cpu-tiny"): (
        {**CPU, "n_train": 192, "n_eval": 200, "max_length": 32, "batch_size": 8, "learning_rate": 1e-4, "epochs": 2,
         "warmup": 0.1, "head_lr_multiplier": 10.0},
        dict(topic_max_length=48, tagging_train=768, tagging_max_length=40, tagging_learning_rate=2e-4,
             tagging_epochs=3, tagging_batch_size=16, lora_learning_rate=3e-3,
             decoder_train=96, decoder_eval=96, decoder_max_length=32, translation_train=128, translation_eval=32,
             translation_max_length=40, translation_epochs=2, translation_learning_rate=1e-3, new_tokens=16,
             chinese_train=512, chinese_encoder=None)),
    ("05", "gpu"): (
        {**GPU, "warmup": 0.1},  # the gpu dict had no head_lr_multiplier: the chapter's size.get gave 1.0
        dict(topic_max_length=256, tagging_train=None, tagging_max_length=128, tagging_learning_rate=1e-4,
             tagging_epochs=3, tagging_batch_size=32, lora_learning_rate=5e-4,
             decoder_train=None, decoder_eval=None, decoder_max_length=128, translation_train=None,
             translation_eval=None, translation_max_length=64, translation_epochs=3, translation_learning_rate=5e-4,
             new_tokens=48, chinese_train=None, chinese_encoder="google-bert/bert-base-chinese")),
    ("06", "cpu-tiny"): ({**CPU, "n_train": 128, "n_eval": None, "max_length": 32, "batch_size": 16,
                          "learning_rate": 3e-4, "epochs": 1, "warmup": 0.1},
                         dict(sweep_learning_rate=3e-4, n_trials=6)),
    ("06", "gpu"): ({**GPU, "epochs": 2, "warmup": 0.1}, dict(sweep_learning_rate=3e-4, n_trials=12)),
    ("07", "cpu-tiny"): (
        {**CPU, "n_train": 720, "n_eval": 200, "max_length": 32, "batch_size": 16, "learning_rate": 2e-5, "epochs": 1,
         "warmup": 0.1},
        dict(sizes=(40, 120, 360), min_steps=0, n_validation=200, mi_members=50, choice_train=120, choice_test=None,
             spam_train=1500, translation_train=96, translation_test=24, translation_max_length=40,
             translation_epochs=2, new_tokens=16)),
    ("07", "gpu"): (
        {**GPU, "warmup": 0.1},
        dict(sizes=(50, 200, 800, 2000, 8000), min_steps=50, n_validation=500, mi_members=500, choice_train=800,
             choice_test=None, spam_train=None, translation_train=None, translation_test=None,
             translation_max_length=64, translation_epochs=3, new_tokens=48)),
    ("08", "cpu-tiny"): (
        {**CPU, "batch_size": 8, "learning_rate": 2e-4, "epochs": 2, "warmup": 0.1},
        dict(train_per_task=16, test_per_task=12, text_chars=200, max_tokens=192, trained_blocks=4, lora_rank=16, strengths=(1.0,),
             decoupled_strength=200.0, strength_seeds=1, answer_tokens=4, long_answer_tokens=20, perplexity_texts=16,
             perplexity_length=96)),
    ("08", "gpu"): (
        {**GPU, "batch_size": 16, "learning_rate": 1e-4, "epochs": 2, "warmup": 0.1, "mixed_precision": "auto"},
        dict(train_per_task=1000, test_per_task=200, text_chars=1000, max_tokens=384, trained_blocks=8, lora_rank=16,
             strengths=(0.1, 0.3, 1.0, 3.0, 10.0), decoupled_strength=200.0, strength_seeds=3, answer_tokens=4,
             long_answer_tokens=48, perplexity_texts=200, perplexity_length=256)),
}


@pytest.mark.parametrize("key", sorted(BEFORE))
def test_chapter_values_are_those_the_chapters_used_before(key):
    number, name = key
    book, own = BEFORE[key]
    cfg = get_config(name, chapter=number)
    assert cfg.name == name and (cfg.encoder, cfg.decoder, cfg.seed) == ("minilm", "smollm2-135m", 0)
    assert {k: getattr(cfg, k) for k in book} == book
    assert (None if cfg.chapter is None else dataclasses.asdict(cfg.chapter)) == own


def test_every_chapter_has_both_configurations():
    assert set(BEFORE) == {(n, name) for n in CHAPTERS for name in CHAPTERS[n]}
    assert all(set(entry) == set(config.CONFIGS) for entry in CHAPTERS.values())


@pytest.mark.parametrize("cls, field, value, expected", [
    (ApplicationsValues, "topic_max_length", 0, "an integer >= 1"),
    (ApplicationsValues, "tagging_learning_rate", -1e-4, "a number > 0"),
    (InstructionValues, "strengths", [1.0, -2.0], "a non-empty list of numbers > 0"),
    (InstructionValues, "strengths", [], "a non-empty list of numbers > 0"),
    (ApplicationsValues, "decoder_train", "all", "an integer >= 1 or None (all)"),
    (ApplicationsValues, "translation_epochs", True, "an integer >= 1"),
    (ApplicationsValues, "chinese_encoder", " ", "a non-empty name or None"),
    (ApplicationsValues, "chinese_encoder", 3, "a non-empty name or None"),
    (ToolsValues, "n_trials", 3, "an integer >= 4"),
    (EvaluationValues, "min_steps", -1, "an integer >= 0"),
    (EvaluationValues, "sizes", (), "a non-empty list of integers >= 1"),
    (EvaluationValues, "sizes", [40, 0], "a non-empty list of integers >= 1"),
])
def test_typed_values_reject_bad_values_naming_the_field(cls, field, value, expected):
    good = next(entry["cpu-tiny"].chapter for entry in CHAPTERS.values()
                if isinstance(entry["cpu-tiny"].chapter, cls))
    with pytest.raises(ValueError) as error:
        dataclasses.replace(good, **{field: value})
    assert str(error.value) == f"{cls.__name__}.{field}={value!r} is not allowed: expected {expected}."


def test_typed_values_are_frozen_and_lists_become_tuples():
    cfg = get_config("cpu-tiny", chapter="07", sizes=[40, 80])
    assert cfg.chapter.sizes == (40, 80)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.chapter.sizes = (1,)


def test_overrides_reach_book_fields_and_chapter_values():
    cfg = get_config("gpu", chapter="05", epochs=1, topic_max_length=64)
    assert (cfg.epochs, cfg.chapter.topic_max_length, cfg.chapter.tagging_max_length) == (1, 64, 128)
    assert get_config("gpu", chapter="05").chapter.topic_max_length == 256  # the registry is unchanged


@pytest.mark.parametrize("call, message", [
    (lambda: get_config("cpu-tiny", chapter="09"), "Unknown chapter '09': expected None (the defaults) or one of 02"),
    (lambda: get_config("cpu-tiny", chapter="02", sizes=[1]), "Unknown config field(s) sizes: expected some of"),
    (lambda: get_config("cpu-tiny", topic_max_length=3), "Unknown config field(s) topic_max_length"),
    (lambda: get_config("cpu-tiny", extra={}), "Unknown config field(s) extra"),
    (lambda: get_config("cpu-tiny", warmup=1.5), "warmup=1.5 is not allowed: expected a fraction"),
    (lambda: get_config("cpu-tiny", head_lr_multiplier=0), "head_lr_multiplier=0 is not allowed: expected a number"),
    (lambda: config.BookConfig(name="x", chapter={"a": 1}), "chapter={'a': 1} is not allowed"),
])
def test_bad_names_and_values_fail_with_a_clear_message(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def test_the_bridge_carries_every_training_field():
    training = {f.name for f in dataclasses.fields(TrainingConfig)}
    book = {f.name for f in dataclasses.fields(config.BookConfig)}
    assert set(BOOK_FIELDS) == book & training  # every book field with a training meaning, no other
    cfg = get_config("cpu-tiny", chapter="03", epochs=3, mixed_precision="bf16", seed=4)
    run = TrainingConfig.from_book_config(cfg)
    assert {name: getattr(run, name) for name in BOOK_FIELDS} == {name: getattr(cfg, name) for name in BOOK_FIELDS}
    assert (run.epochs, run.batch_size, run.learning_rate, run.warmup, run.head_lr_multiplier,
            run.mixed_precision, run.seed) == (3, 8, 2e-4, 0.1, 10.0, "bf16", 4)
    assert TrainingConfig.from_book_config(cfg, warmup=5, seed=1).warmup == 5  # overrides win
    defaults = TrainingConfig.from_book_config(get_config("cpu-tiny"))
    assert (defaults.warmup, defaults.head_lr_multiplier) == (TrainingConfig().warmup, TrainingConfig().head_lr_multiplier)


def test_chapter_start_gives_the_chapter_config_and_the_readers_knobs():
    try:
        cfg = chapter.start("cpu-tiny", 2, chapter="06", **chapter.given(n_trials=None, epochs=3))
        assert (cfg.seed, cfg.epochs, cfg.chapter.n_trials, seeding.run_seed()) == (2, 3, 6, 2)
        assert chapter.start("cpu-tiny", 0, chapter="06", n_trials=8).chapter.n_trials == 8
        with pytest.raises(ValueError, match="ToolsValues.n_trials=2 is not allowed"):
            chapter.start("cpu-tiny", 0, chapter="06", n_trials=2)
        with pytest.raises(ValueError, match="not both"):
            chapter.start("cpu-tiny", 0, {"cpu-tiny": {"epochs": 1}}, chapter="06")
    finally:
        seeding.set_run_seed(0)


@pytest.mark.parametrize("has_gpu, gpu_bf16, cpu_bf16, cpu_speedup, expected", [
    (False, False, True, 1.46, "bf16"),  # the AMD EPYC of benchmarks/README.md
    (False, False, True, 0.70, "no"),  # native bf16 that is slower than fp32 (an Intel Xeon, same README)
    (False, False, False, 2.0, "no"), (True, True, False, 1.0, "bf16"), (True, False, True, 2.0, "no")])
def test_auto_precision_is_what_makes_the_machine_faster(monkeypatch, capsys, has_gpu, gpu_bf16, cpu_bf16,
                                                          cpu_speedup, expected):
    from ftutils import trainer

    monkeypatch.setattr(trainer.torch.cuda, "is_available", lambda: has_gpu)
    monkeypatch.setattr(trainer.torch.cuda, "is_bf16_supported", lambda: gpu_bf16)
    monkeypatch.setattr(trainer, "cpu_supports_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(trainer, "cpu_bf16_speedup", lambda: cpu_speedup)
    try:
        cfg = chapter.start("cpu-tiny", 0, chapter="04", mixed_precision="auto")
    finally:
        seeding.set_run_seed(0)
    assert cfg.mixed_precision == expected
    printed = capsys.readouterr().out
    assert f"MIXED_PRECISION 'auto' -> {expected!r}" in printed
    assert ("without bfloat16" in printed) == (has_gpu and not gpu_bf16)  # the reason matches the machine
    assert ("0.70x the speed of fp32" in printed) == (not has_gpu and cpu_bf16 and cpu_speedup == 0.70)
    assert TrainingConfig(mixed_precision="auto").mixed_precision == expected
    assert chapter.start("cpu-tiny", 0, chapter="04").mixed_precision == "no"  # the recorded default stays fp32
    with pytest.raises(ValueError, match="mixed_precision='fp8' is not allowed: expected one of no, bf16, fp16, auto"):
        get_config("cpu-tiny", mixed_precision="fp8")


def test_the_head_convention_is_mean_pooling_and_names_the_choices_of_models_load():
    from ftutils import models

    assert set(config.POOLING_CHOICES) == set(models.POOLINGS)
    assert all(get_config(name, chapter).pooling == "mean" for chapter in CHAPTERS for name in CHAPTERS[chapter])
    with pytest.raises(ValueError, match="pooling='cls' is not allowed: expected one of mean, model"):
        get_config("cpu-tiny", pooling="cls")


def test_load_for_takes_the_sizes_and_seed_of_the_config():
    cfg = get_config("cpu-tiny", n_train=12, n_eval=6, seed=3)
    dsd = data.load_for("rotten_tomatoes", cfg)
    same = data.load("rotten_tomatoes", n_train=12, n_validation=6, n_test=6, seed=3)
    assert {s: ds["text"] for s, ds in dsd.items()} == {s: ds["text"] for s, ds in same.items()}
    assert len(data.load_for("rotten_tomatoes", cfg, n_validation=2)["validation"]) == 2


def test_smoke_sized_caps_every_size_and_keeps_the_code_path():
    from ftutils.config import CHAPTERS, SMOKE_SIZES, smoke_sized

    for number, configs in CHAPTERS.items():
        for name, cfg in configs.items():
            small = smoke_sized(cfg)
            assert (small.name, small.encoder, small.decoder, small.mixed_precision, small.learning_rate) == (
                cfg.name, cfg.encoder, cfg.decoder, cfg.mixed_precision, cfg.learning_rate), (number, name)
            for field_name, cap in SMOKE_SIZES.items():
                assert getattr(small, field_name) <= cap, (number, name, field_name)
            if cfg.chapter is not None:
                for field_name, cap in type(cfg.chapter).SMOKE.items():
                    value = getattr(small.chapter, field_name)
                    assert value == cap if isinstance(cap, tuple) else value <= cap, (number, field_name)
    assert smoke_sized(CHAPTERS["03"]["cpu-tiny"]).n_train == 48  # capped, not raised: 384 -> 48
    assert smoke_sized(CHAPTERS["05"]["gpu"]).chapter.decoder_train == 16  # None (all) -> 16


def test_every_chapter_size_field_has_a_smoke_value():
    import dataclasses

    from ftutils.config import CHAPTERS

    sizes = ("_train", "_eval", "_test", "_length", "_epochs", "new_tokens", "sizes", "members", "n_validation",
             "n_trials")
    for configs in CHAPTERS.values():
        own = configs["gpu"].chapter
        if own is None:
            continue
        for f in dataclasses.fields(own):
            if f.name.endswith(sizes):
                assert f.name in type(own).SMOKE, f"{type(own).__name__}.{f.name} has no smoke value"
