"""Tests for ftutils.lora."""

import pytest
import torch
import transformers

from ftutils import lora


def _tiny_llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                                   num_attention_heads=2, num_key_value_heads=1, num_labels=2, pad_token_id=0)
    return transformers.LlamaForSequenceClassification(cfg)


def test_lora_trains_only_adapters_and_head():
    model = lora.add_lora(_tiny_llama(), r=2, layers=[2])
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or "score" in n for n in names)
    assert all(".layers.2." in n for n in names if "lora_" in n)
    trained, total = lora.trainable_parameters(model)
    assert 0 < trained < total / 10
    # starts as the original model: B = 0
    base = _tiny_llama()
    x = torch.tensor([[3, 4, 5]])
    model.eval(); base.eval()
    assert torch.allclose(model(input_ids=x).logits, base(input_ids=x).logits, atol=1e-6)


def test_lora_bad_target():
    with pytest.raises(ValueError, match="not modules"):
        lora.add_lora(_tiny_llama(), target_modules=("query",))
