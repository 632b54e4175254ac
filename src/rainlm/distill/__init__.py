"""Distillation data: RAIN's answers and reviewers' decisions as training data.

``rain distill export`` turns bench results (``rain bench run`` and ``rain bench
frontier`` JSONL files) and the audit database (``TraceStore``, with its review
decisions) into preference pairs (TRL's DPO format) and SFT examples.

Nothing is imported at package import time; use the submodules::

    from rainlm.distill.export import ExportOptions, export_pairs
    from rainlm.distill.formats import write_formats
"""
