"""Spanish-English verse pairs from two public-domain Bibles, read offline.

The King James Version (``engKJV2006eb``) and the Reina-Valera 1909
(``spaRV1909eb``) share their versification, so verse ``(book, chapter,
verse)`` of one translates verse ``(book, chapter, verse)`` of the other:
31,084 aligned verses, a parallel corpus that needs no download. Debian
packages the two SWORD modules; ``pysword`` (MIT) reads them::

    sudo apt-get install -y sword-text-kjv sword-text-sparv
    pip install pysword==0.2.8

The verses are extracted with their markup (``clean=False``) and cleaned here:
footnotes are dropped with their text, and a tag that sits between two letters
becomes a space. pysword's own ``clean=True`` glues such words together in
the Spanish module (about 1-2% of verses: "Graciaseaá vosotros").

Extraction decompresses every book (about a minute); the pairs are cached as a
tab-separated file, by default under ``~/.cache/adamod-optax/``.

Example::

  >>> from benchmarks.bible import load_pairs
  >>> pairs = load_pairs()                               # doctest: +SKIP
  >>> pairs[0].book, pairs[0].es[:20], pairs[0].en[:20]  # doctest: +SKIP
  ('Genesis', 'EN el principio crió', 'In the beginning God')
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

SWORD_DIR = "/usr/share/sword"
"""Where Debian's ``sword-text-*`` packages install the modules."""

ENGLISH, SPANISH = "engKJV2006eb", "spaRV1909eb"
INSTALL = "sudo apt-get install -y sword-text-kjv sword-text-sparv && pip install pysword==0.2.8"
CACHE_ENV = "ADAMOD_CACHE_DIR"
CACHE_VERSION = 2  # bump when the cleaning below changes


class MissingBibleError(RuntimeError):
    """The SWORD modules or pysword are not installed; the message says how to install them."""


class VersePair(NamedTuple):
    """One aligned verse.

    Attributes:
      book: the English book name as pysword gives it (``"Genesis"``, ``"1 John"``).
      chapter: chapter number, from 1.
      verse: verse number, from 1.
      es: the Reina-Valera 1909 text, cleaned.
      en: the King James text, cleaned.
    """

    book: str
    chapter: int
    verse: int
    es: str
    en: str


_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_USFM = re.compile(r"\\[a-z]+\*?")  # stray USFM markers in the KJV module: "the \nd LORD"


def clean_verse(raw: str) -> str:
    """Plain text of one OSIS-marked verse.

    Footnotes (``<note>...</note>``) go with their text; every other tag goes,
    replaced by a space when a letter or digit touches it on both sides (the
    Spanish module puts ``<transChange>`` right against words); entities are
    unescaped, the pilcrow and stray USFM markers (``\\nd``) dropped and whitespace
    collapsed.

    >>> clean_verse('Gracia<transChange type="added">sea</transChange>á vosotros')
    'Gracia sea á vosotros'
    >>> clean_verse('<w lemma="strong:H5281">Naomi</w>, <w>husband</w>.<note>Heb. x</note> ')
    'Naomi, husband.'
    >>> clean_verse('the \\\\nd LORD')
    'the LORD'
    """
    text = _NOTE.sub("", raw)
    parts = _TAG.split(text)
    out = parts[0]
    for part in parts[1:]:
        if out and part and out[-1].isalnum() and part[0].isalnum():
            out += " "
        out += part
    out = _USFM.sub(" ", html.unescape(out)).replace("¶", " ")
    return _SPACE.sub(" ", out).strip()


def missing(sword_dir: str = SWORD_DIR) -> str | None:
    """What the translation experiment lacks, as an install command, or ``None``.

    Checks the SWORD modules and the ``translation`` extra's imports (pysword,
    sentencepiece, sacrebleu) and orbax, which keeps the checkpoints.
    """
    if not os.path.isdir(os.path.join(sword_dir, "mods.d")):
        return f"the Bible modules are not installed in {sword_dir}: {INSTALL}"
    for module in ("pysword", "sentencepiece", "sacrebleu", "orbax.checkpoint"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is missing: pip install '.[translation]'"
    return None


def _require_pysword():
    try:
        from pysword.modules import SwordModules
    except ImportError as e:
        raise MissingBibleError(f"pysword is not installed.\nInstall the data with:  {INSTALL}") \
            from e
    return SwordModules


def extract_pairs(sword_dir: str = SWORD_DIR) -> list[VersePair]:
    """Reads both modules book by book and zips them verse by verse (no cache).

    Verses empty in either translation are dropped (a handful: the KJV and the
    RV1909 differ in a few places where one leaves a verse out).

    Raises:
      MissingBibleError: with the install command, when a module or pysword is missing.
    """
    swords = _require_pysword()
    if not os.path.isdir(os.path.join(sword_dir, "mods.d")):
        raise MissingBibleError(f"no SWORD modules under {sword_dir}.\nInstall with:  {INSTALL}")
    modules = swords(sword_dir)
    found = modules.parse_modules()
    missing = [m for m in (ENGLISH, SPANISH) if m not in found]
    if missing:
        raise MissingBibleError(f"SWORD module(s) {missing} not found in {sword_dir}.\n"
                                f"Install with:  {INSTALL}")
    en_bible = modules.get_bible_from_module(ENGLISH)
    es_bible = modules.get_bible_from_module(SPANISH)
    pairs = []
    for testament in ("ot", "nt"):
        for book in en_bible.get_structure().get_books()[testament]:
            refs = [(c, v) for c in range(1, book.num_chapters + 1)
                    for v in range(1, book.chapter_lengths[c - 1] + 1)]
            en = list(en_bible.get_iter(books=[book.name], clean=False))
            es = list(es_bible.get_iter(books=[book.name], clean=False))
            if not len(en) == len(es) == len(refs):
                raise ValueError(f"{book.name}: {len(en)} English, {len(es)} Spanish verses, "
                                 f"{len(refs)} in the versification")
            for (c, v), e, s in zip(refs, en, es):
                e, s = clean_verse(e), clean_verse(s)
                if e and s:
                    pairs.append(VersePair(book.name, c, v, s, e))
    return pairs


def cache_path() -> str:
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "adamod-optax")
    return os.path.join(root, f"bible_es_en_v{CACHE_VERSION}.tsv")


def load_pairs(sword_dir: str = SWORD_DIR, cache: bool = True) -> list[VersePair]:
    """All aligned verse pairs in canonical order, from the cache when it exists.

    Args:
      sword_dir: the SWORD installation to read.
      cache: read and write the tab-separated cache (``$ADAMOD_CACHE_DIR`` or
        ``~/.cache/adamod-optax/``).

    Raises:
      MissingBibleError: with the install command, when the data are missing.
    """
    path = cache_path()
    if cache and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t") for line in f]
        return [VersePair(b, int(c), int(v), s, e) for b, c, v, s, e in rows]
    pairs = extract_pairs(sword_dir)
    if cache:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for p in pairs:
                f.write("\t".join(map(str, p)) + "\n")
        os.replace(tmp, path)
    return pairs


def split_by_book(pairs: Iterable[VersePair], valid_books: Sequence[str],
                  test_books: Sequence[str]) -> dict[str, list[VersePair]]:
    """``{"train", "valid", "test"}``: whole books held out, so no verse leaks.

    Raises:
      ValueError: if a named book does not exist or is named twice.
    """
    pairs = list(pairs)
    names = {p.book for p in pairs}
    held = list(valid_books) + list(test_books)
    unknown = [b for b in held if b not in names]
    if unknown:
        raise ValueError(f"unknown book(s) {unknown}; books are named like {sorted(names)[:4]}")
    if len(set(held)) != len(held):
        raise ValueError(f"a book is both validation and test or named twice: {held}")
    out: dict[str, list[VersePair]] = {"train": [], "valid": [], "test": []}
    for p in pairs:
        key = "valid" if p.book in valid_books else "test" if p.book in test_books else "train"
        out[key].append(p)
    return out
