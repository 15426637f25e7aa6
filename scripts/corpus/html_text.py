"""HTML to text blocks (paragraphs, headings, list items, table cells, ``<pre>``) and the script of letters."""

from __future__ import annotations

import html.parser
import unicodedata
from typing import NamedTuple

_BLOCK_TAGS = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "tr", "td", "th", "dt", "dd", "table",
    "ul", "ol", "dl", "title", "blockquote", "br", "header", "article", "section", "caption",
})
_VOID_TAGS = frozenset({"br", "img", "meta", "link", "hr", "input", "area", "base", "col", "embed", "param",
                        "source", "track", "wbr"})
_NAV_CLASSES = frozenset({"docnav", "navheader", "navfooter"})  # prev/next/home links of DocBook pages
_NAV_IDS = frozenset({"banner", "title"})  # the handbook's "Download the ebook" banner and logo bar
_XREF_CLASSES = frozenset({"xref", "link"})  # DocBook cross-references: "Section 4.1, “<title>”"


class Block(NamedTuple):
    unit: int  # number of ``unit_tag`` elements started before the block
    text: str
    key: str  # ``text`` with each cross-reference's text replaced by "\0", for comparing translations


class _BlockParser(html.parser.HTMLParser):
    """Text of an HTML body as blocks (one per paragraph, heading, list item, table cell, ``<pre>``).

    Whitespace inside a block is collapsed to single spaces, except in ``<pre>``, which keeps its
    lines. ``unit_tag`` (e.g. ``"article"``) starts a new unit at each such element. Each block
    also gets a comparison key in which cross-reference text is masked: a translated build
    localises the "Section 4.1" of a link even inside a paragraph it left in English.
    """

    def __init__(self, unit_tag: str | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._text: list[str] = []
        self._key: list[str] = []
        self._masking = 0
        self._stack: list[tuple[str, bool]] = []  # (tag, starts a skipped subtree)
        self._skipping = 0
        self._pre = 0
        self._in_body = False
        self._unit_tag = unit_tag
        self._unit = 0

    def _normalise(self, parts: list[str]) -> str:
        text = "".join(parts)
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) if self._pre else " ".join(text.split())

    def _flush(self) -> None:
        text, key = self._normalise(self._text), self._normalise(self._key)
        self._text, self._key = [], []
        if text.strip():
            self.blocks.append(Block(self._unit, text, key))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "body":
            self._in_body = True
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag == self._unit_tag:
            self._unit += 1
        if tag in _VOID_TAGS:
            return
        classes = set((attributes.get("class") or "").split())
        skip = bool(classes & _NAV_CLASSES) or attributes.get("id") in _NAV_IDS or tag in ("script", "style")
        mask = tag == "a" and bool(classes & _XREF_CLASSES)
        self._stack.append((tag, skip, mask))
        self._skipping += skip
        self._masking += mask
        self._pre += tag == "pre"
        if mask and not self._skipping:
            self._key.append("\0")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag in _VOID_TAGS or all(t != tag for t, _, _ in self._stack):
            return  # a stray end tag closes nothing
        while self._stack:
            open_tag, skip, mask = self._stack.pop()
            self._skipping -= skip
            self._masking -= mask
            self._pre -= open_tag == "pre"
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_body and not self._skipping:
            self._text.append(data)
            if not self._masking:
                self._key.append(data)


def html_blocks(source: str, unit_tag: str | None = None) -> list[Block]:
    parser = _BlockParser(unit_tag)
    parser.feed(source)
    parser.close()
    parser._flush()
    return parser.blocks


_NAME_SCRIPTS = {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana", "KATAKANA-HIRAGANA": "Kana"}


def letter_script(ch: str) -> str | None:
    """The script of a letter, from the first word of its Unicode name (``None`` for a non-letter)."""
    if not ch.isalpha():
        return None
    first = unicodedata.name(ch, "?").split()[0]
    return _NAME_SCRIPTS.get(first, "Hangul" if first.startswith("HANGUL") else first.title())


def writes_in(text: str, script: str) -> bool:
    """Whether ``text`` has a letter of ``script`` (for ``Kana``, Japanese: kana or kanji)."""
    wanted = {"Kana", "Han"} if script == "Kana" else {script}
    return any(letter_script(ch) in wanted for ch in text)
