"""Example blt-lab plugin: the ``after_vowel`` patcher (see ``plugin.py``)."""
