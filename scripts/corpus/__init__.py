"""The pieces of scripts/build_corpus.py: one module per source, the HTML text extraction, and the output."""
