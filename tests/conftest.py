"""Shared test set-up: tests never reach the Hugging Face hub (CI has none), so fail fast offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402  (after the environment is set: transformers reads it on import)
import torch  # noqa: E402
import transformers  # noqa: E402

from ftutils import models  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():
    """SmolLM2's tokenizer (with its chat template), for the decoder tests; a module may define its own."""
    return transformers.AutoTokenizer.from_pretrained(models.resolve("smollm2-135m"))


@pytest.fixture(scope="module")
def tiny(tokenizer):
    """A two-layer random Llama decoder over ``tokenizer``'s vocabulary: fast, deterministic, offline."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    return transformers.LlamaForCausalLM(cfg)
