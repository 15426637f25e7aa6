"""The plugin's own tests: the rule, plus blt-lab's contract suite through its fixture."""

import blt.tokens
from blt_vowel_patcher.plugin import AfterVowelConfig, AfterVowelPatcher


def test_patch_ends_after_each_vowel():
    patches = AfterVowelPatcher(AfterVowelConfig()).patch(blt.tokens.encode("banana"))
    assert patches.lengths.tolist() == [1, 2, 2, 2, 1]  # <bos> | ba | na | na | <eos>


def test_contracts(blt_check_patcher):
    blt_check_patcher(AfterVowelPatcher(AfterVowelConfig()), max_examples=20)
