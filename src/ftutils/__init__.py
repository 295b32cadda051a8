"""ftutils: the tested library behind the executable textbook on fine-tuning pretrained language models.

Modules, one idea each: ``config`` (run configurations), ``assets`` (registry models and data),
``data`` (datasets by name), ``models`` (models and tokenizers by name), ``regularizers`` (L2-SP and
friends), ``trainer`` (the Accelerate training loop), ``metrics``, ``plotting``, ``book`` (the runner).
"""

__version__ = "0.1.0"
