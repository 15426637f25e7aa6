"""Baselines compared with BLT in bits per byte: the byte-level and BPE-token transformers."""
