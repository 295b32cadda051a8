"""Tests of ftutils.anatomy: one answer to "which layer / head / wrapper" for trainer and regularizers."""

from __future__ import annotations

import pytest
import torch
import transformers

from ftutils import anatomy, regularizers
from ftutils import trainer as tr


def tiny_bert() -> transformers.BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=16, num_labels=2)
    return transformers.BertForSequenceClassification(cfg)


def tiny_gpt2() -> transformers.GPT2ForSequenceClassification:
    cfg = transformers.GPT2Config(vocab_size=30, n_embd=8, n_layer=3, n_head=2, n_positions=16, num_labels=2)
    return transformers.GPT2ForSequenceClassification(cfg)


def tiny_llama() -> transformers.LlamaForSequenceClassification:
    cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                                   num_attention_heads=2, num_key_value_heads=1, num_labels=2, pad_token_id=0)
    return transformers.LlamaForSequenceClassification(cfg)


class Wrapper(torch.nn.Module):
    """Stands in for DDP / Accelerate (``module``) or torch.compile (``_orig_mod``)."""

    def __init__(self, inner: torch.nn.Module, attribute: str = "module") -> None:
        super().__init__()
        setattr(self, attribute, inner)


class ParameterListModel(torch.nn.Module):
    """Blocks held as an nn.ParameterList: parameter names end in the block index ("layers.1")."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = torch.nn.Embedding(5, 2)
        self.layers = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2, 2)) for _ in range(3)])
        self.norm = torch.nn.LayerNorm(2)


def test_old_call_sites_agree_on_a_name_that_ends_in_its_layer_index():
    # trainer.py's pattern wanted a "." after the index, so it put "layers.1" above the top layer
    # (depth num_layers + 1, the full learning rate) while regularizers.py called it "layer 1".
    # Both now read ftutils.anatomy.LAYER_PATTERN, which accepts the end of the name.
    for name, index in [("layers.1", 1), ("model.layers.3", 3), ("transformer.h.0", 0), ("encoder.block.2", 2)]:
        assert anatomy.layer_index(name) == index
        assert tr.layer_depth(name, 6) == index + 1
        assert regularizers.layer_group(name) == f"layer {index}"


@pytest.mark.parametrize("build", [tiny_bert, tiny_gpt2, tiny_llama, ParameterListModel])
def test_layer_depth_and_layer_group_agree_on_every_parameter(build):
    model = build()
    n = anatomy.num_layers(model)
    assert n == 3 if build is not tiny_bert else n == 2
    for name, _ in model.named_parameters():
        depth, group = tr.layer_depth(name, n), regularizers.layer_group(name)
        if group.startswith("layer "):
            assert depth == int(group.split()[1]) + 1, name
        elif group == "embeddings":
            assert depth == 0, name
        else:
            assert depth == n + 1, name


def test_num_layers_falls_back_to_the_highest_index_in_the_names():
    # no config: counted from the names, including names that end in the index
    assert anatomy.num_layers(ParameterListModel()) == 3
    assert anatomy.num_layers(Wrapper(ParameterListModel())) == 3
    assert anatomy.num_layers(torch.nn.Linear(2, 2)) == 0


def test_parameter_list_blocks_get_their_layer_wise_learning_rate():
    groups = tr.build_param_groups(ParameterListModel(), learning_rate=1.0, layer_decay=0.5)
    lr_of = {n: g["lr"] for g in groups for n in g["names"]}
    assert lr_of["embeddings.weight"] == 0.5**4
    assert [lr_of[f"layers.{i}"] for i in range(3)] == [0.5**3, 0.5**2, 0.5]
    assert lr_of["norm.weight"] == 1.0


def test_is_embedding():
    for name in ("bert.embeddings.word_embeddings.weight", "model.embed_tokens.weight", "transformer.wte.weight",
                 "wpe.weight"):
        assert anatomy.is_embedding(name), name
    for name in ("classifier.weight", "model.norm.weight", "transformer.h.0.attn.c_attn.weight"):
        assert not anatomy.is_embedding(name), name


def test_unwrap_through_nested_wrappers_and_cycles():
    inner = torch.nn.Linear(2, 2)
    assert anatomy.unwrap(inner) is inner
    assert anatomy.unwrap(Wrapper(inner)) is inner
    assert anatomy.unwrap(Wrapper(Wrapper(inner, "_orig_mod"))) is inner  # DDP of a compiled model
    assert anatomy.unwrap(Wrapper(Wrapper(inner), "_orig_mod")) is inner  # compile of a DDP model
    loop = Wrapper(inner)
    object.__setattr__(loop, "module", loop)  # a module naming itself: returned, not an endless loop
    assert anatomy.unwrap(loop) is loop
    # the trainer's and the regulariser's unwrapping are the same function
    assert regularizers.unwrap_model is anatomy.unwrap


def test_head_parameter_names_by_prefix_by_mark_and_through_wrappers():
    model = tiny_bert()
    assert anatomy.head_parameter_names(model) == ["classifier.weight", "classifier.bias"]
    assert anatomy.head_parameter_names(Wrapper(model)) == ["classifier.weight", "classifier.bias"]
    anatomy.mark_new_parameters(model, ["bert.pooler.dense.bias", "classifier.bias"])
    assert model.ftutils_new_parameters == ("bert.pooler.dense.bias", "classifier.bias")
    assert anatomy.marked_new_parameters(Wrapper(model)) == ("bert.pooler.dense.bias", "classifier.bias")
    assert tr.head_parameter_names(model) == ["bert.pooler.dense.bias", "classifier.bias"]  # model order
    # head names and the L2-SP exclusion come from the same mark
    assert regularizers.default_exclude(model) == ["bert.pooler.dense.bias", "classifier.bias"]


def test_an_empty_mark_means_nothing_new_for_the_anchor_but_keeps_the_head_learning_rate():
    model = tiny_bert()
    anatomy.mark_new_parameters(model, ())  # a reloaded fine-tuned model: its head came from the checkpoint
    assert anatomy.marked_new_parameters(model) == ()
    assert regularizers.default_exclude(model) == []
    assert "classifier.weight" in regularizers.make_regularizer("l2sp", model, 0.1).anchored_names()
    assert anatomy.head_parameter_names(model) == ["classifier.weight", "classifier.bias"]


def test_public_names_stay_importable_from_their_old_modules():
    assert tr.layer_depth is anatomy.layer_depth
    assert tr.head_parameter_names is anatomy.head_parameter_names
    assert tr.HEAD_PREFIXES is anatomy.HEAD_PREFIXES is regularizers.DEFAULT_HEAD_PREFIXES
    assert regularizers.layer_group is anatomy.layer_group
    for name in ("build_param_groups", "freeze_layers", "unfreeze_layers"):
        assert callable(getattr(tr, name))


def test_layer_group_order():
    groups = ["pooler", "layer 10", "embeddings", "layer 2", "classifier"]
    assert sorted(groups, key=anatomy.layer_group_order) == ["embeddings", "layer 2", "layer 10", "classifier",
                                                               "pooler"]
