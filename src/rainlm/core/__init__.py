"""The RAIN search: pure Python + numpy. Nothing here imports torch, HTTP or a tokenizer."""
