"""Which code page a file that is not UTF-8 is in, when the evidence of the whole file says so.

Every code page etl knows decodes the file's words that have bytes beyond ASCII; a reading is
*natural* when each of those words reads as words are written: no symbol or control character
inside a word, one script a word, no capital after a small letter, a Latin word not made mostly
of accents, the accented letters of one language, and the spelling rules that give misreads
away (Spanish ñ comes before a vowel, Polish ń ś ź never do, Czech ě follows b d f m n p t v,
Russian й follows a vowel, ...). A misread is rarely natural on every word, so:

- the file is read in a code page etl supports when every natural reading is that same text;
- one bias is stated rather than hidden: text that reads naturally both as Western European
  (cp1252, what Excel writes on Western Windows) and as Central European or Baltic
  (`Naïve` or `Naďve`, `crème` or `crčme`) is read as cp1252, and the run says what the other
  reading would have been; the Central European letters that give cp1250 away (ł ś ż ą ź ř ě ů ő
  ű ť) all read unnaturally in cp1252;
- otherwise the file is refused with the candidates, and `--encoding` is the way on.

General detectors (charset-normalizer, chardet) were measured on short spreadsheet exports and
picked cp1250 for Russian cp1251 text and mac_iceland for MacRoman: a handful of accented words
is too little for their statistics, and they go ahead on a guess.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

#: the code pages read without --encoding, most common first
SUPPORTED = [
    ("cp1252", "Windows Western European"),
    ("cp1250", "Windows Central European"),
    ("cp1251", "Windows Cyrillic"),
    ("cp932", "Shift-JIS, Japanese"),
    ("mac_roman", "Mac OS Roman"),
    ("cp850", "DOS Western European"),
]
#: code pages known well enough to say a file is in one, read only with --encoding
OTHERS = [
    ("iso8859-2", "ISO 8859-2, Central European"),
    ("cp1257", "Windows Baltic"),
    ("cp1254", "Windows Turkish"),
    ("cp1253", "Windows Greek"),
    ("iso8859-7", "ISO 8859-7, Greek"),
    ("cp1255", "Windows Hebrew"),
    ("iso8859-8", "ISO 8859-8, Hebrew"),
    ("cp1256", "Windows Arabic"),
    ("cp874", "Thai"),
    ("koi8-r", "KOI8-R, Russian"),
    ("koi8-u", "KOI8-U, Ukrainian"),
    ("cp866", "DOS Cyrillic"),
    ("iso8859-5", "ISO 8859-5, Cyrillic"),
    ("gb18030", "GBK/GB18030, Chinese"),
    ("big5", "Big5, Chinese"),
    ("euc_kr", "EUC-KR, Korean"),
    ("euc_jp", "EUC-JP, Japanese"),
    ("cp437", "DOS United States"),
]
TITLES = dict(SUPPORTED + OTHERS + [("latin-1", "ISO 8859-1")])
#: the pages whose natural readings yield to cp1252's (see the module's docstring)
_CENTRAL = {"cp1250", "iso8859-2", "cp1257"}
#: bytes cp1252 leaves undefined; Windows shows them as the ISO 8859-1 control characters
_CP1252_HOLES = {0x81, 0x8D, 0x8F, 0x90, 0x9D}


@dataclass(frozen=True)
class Verdict:
    """A code page to read the file in (with why, for the operator), or why none can be."""

    codec: str | None
    note: str
    readings: int = 0  # how many different natural readings there are
    candidates: str = ""  # how each reads (`cp1252 reads "Café"; ...`), when there are readings


# --- the evidence: the file's words beyond ASCII ---------------------------------------------

#: bytes that never occur inside a character of the multi-byte pages (their trail bytes are 0x40
#: and up), so the file can be cut into words at them before it is decoded: spaces, punctuation
#: and signs below 0x40 but the digits (`1º`, `m²` keep theirs), so `Zoë-17` is the word `Zoë`
_SEPARATORS = rb"\x00-\x2f\x3a-\x3f\x7f"
#: a word starts after a separator (the look-behind keeps the search linear in a long word)
_BYTE_WORD = re.compile(rb"(?<![^%s])[^%s]*[\x80-\xff][^%s]*" % (_SEPARATORS, _SEPARATORS, _SEPARATORS))
_SPLIT = re.compile(r"[^\W\d_][^\S\x20\t\r\n][^\W\d_]")  # a letter, a non-ASCII space, a letter
_WORD = re.compile(r"[^\s,;|\t\"'()\[\]{}<>/\\=+*&%#!?:]+")


#: distinct words kept as evidence; past them, only a word with a byte value not seen yet
_MOST_WORDS = 20_000


def words_of(blocks: Iterable[bytes], most: int = _MOST_WORDS) -> dict[bytes, int]:
    """The distinct byte strings between separators that hold a byte beyond ASCII, each with
    the offset where it first occurs, from the whole file (given block by block): the first
    MOST of them, and after those every word that brings a byte value not seen before."""
    found: dict[bytes, int] = {}
    seen: set[int] = set()
    offset, carry = 0, b""  # the file offset of carry's first byte

    def take(data: bytes, start: int, end: int, at: int) -> None:
        for match in _BYTE_WORD.finditer(data, start, end):
            word = _around_accents(match.group())
            if word in found:
                continue
            if len(found) >= most and seen.issuperset(word):
                continue
            found[word] = at + match.start()
            seen.update(word)

    for block in blocks:
        data = carry + block
        cut = max(data.rfind(b"\n"), data.rfind(b" ")) + 1  # a word is never cut in two
        if cut == 0:
            carry = data
            continue
        take(data, 0, cut, offset)
        offset, carry = offset + cut, data[cut:]
    take(carry, 0, len(carry), offset)
    return found


_CONTEXT = 32


def _around_accents(word: bytes) -> bytes:
    """A long word cut down to its bytes beyond ASCII and some letters either side: the evidence
    is there. A cut falls after two ASCII bytes, so it never splits a character of a multi-byte
    page (whose trail bytes may be ASCII, but follow a byte beyond ASCII)."""
    if len(word) <= 4 * _CONTEXT:
        return word
    high = [i for i, b in enumerate(word) if b >= 0x80]
    start = max(0, high[0] - _CONTEXT)
    while start > 0 and not (word[start - 1] < 0x80 and (start < 2 or word[start - 2] < 0x80)):
        start -= 1
    end = min(len(word), high[-1] + _CONTEXT)
    while end < len(word) and not (word[end - 1] < 0x80 and word[end - 2] < 0x80):
        end += 1
    return word[start:end]


# --- what a natural word is ------------------------------------------------------------------

_GRAVE = set("àèìòù")
_VOWELS = set("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿąęėįųūőűăœ")
_CYRILLIC_VOWELS = set("аеёиоуыэюяіїєў")


def _vowel(c: str) -> bool:
    return c.lower() in _VOWELS


def _after(word: str, i: int) -> str:
    return word[i + 1] if i + 1 < len(word) else ""


def _rule_es(w: str) -> bool:  # ñ comes before a vowel
    return all(_vowel(_after(w, i)) for i, c in enumerate(w) if c == "ñ")


def _rule_pl(w: str) -> bool:  # ń ś ź never before a vowel; ą ę never first
    return (all(not _vowel(_after(w, i)) for i, c in enumerate(w) if c in "ńśź")
            and w[:1] not in ("ą", "ę"))


def _rule_cs(w: str) -> bool:  # ě after b d f m n p t v; ů never first
    return (all(i > 0 and w[i - 1] in "bdfmnptv" for i, c in enumerate(w) if c == "ě")
            and w[:1] != "ů")


def _rule_sk(w: str) -> bool:  # ŕ ĺ (syllabic) between consonants
    return all(not _vowel(w[i - 1] if i else "") and not _vowel(_after(w, i))
               for i, c in enumerate(w) if c in "ŕĺ")


def _rule_is(w: str) -> bool:  # ð never first, þ only first
    return w[:1] != "ð" and all(i == 0 for i, c in enumerate(w) if c == "þ")


def _rule_it(w: str) -> bool:  # ì ò ù end a word
    return all(i == len(w) - 1 for i, c in enumerate(w) if c in "ìòù")


def _rule_fr(w: str) -> bool:  # ù only in où; ï ë after a vowel; œ before u, i or e
    return (all(w[i - 1:i + 1] == "où" for i, c in enumerate(w) if c == "ù")
            and all(i > 0 and _vowel(w[i - 1]) for i, c in enumerate(w) if c in "ïë")
            and all(_after(w, i) in ("u", "i", "e") for i, c in enumerate(w) if c == "œ"))


def _rule_pt(w: str) -> bool:  # õ before e (ões, põe); ã õ after a consonant
    return (all(_after(w, i) == "e" for i, c in enumerate(w) if c == "õ")
            and all(i > 0 and not _vowel(w[i - 1]) for i, c in enumerate(w) if c in "ãõ"))


def _rule_et(w: str) -> bool:  # no c q w x y in Estonian words
    return not any(c in "cqwxy" for c in w)


def _rule_de(w: str) -> bool:  # ß after a vowel
    return all(i > 0 and _vowel(w[i - 1]) for i, c in enumerate(w) if c == "ß")


def _any(w: str) -> bool:
    return True


#: (the accented letters of a language, its spelling rule on a lower-case word)
_LATIN = [
    (set("àâæçéèêëîïôœùûüÿ"), _rule_fr),
    (set("äöüßéèàç"), _rule_de),
    (set("áéíñóúü"), _rule_es),
    (set("áàâãçéêíóôõú"), _rule_pt),
    (set("àèéìíîòóù"), _rule_it),
    (set("àçèéíïòóúü·"), _any),  # Catalan
    (set("áéíóúëïöüèäâêîôû"), _any),  # Dutch
    (set("æøåéó"), _any),  # Danish, Norwegian
    (set("åäöé"), _any),  # Swedish, Finnish
    (set("áðéíóúýþæö"), _rule_is),
    (set("áčďéěíňóřšťúůýž"), _rule_cs),
    (set("áäčďéíĺľňóôŕšťúýž"), _rule_sk),
    (set("ąćęłńóśźż"), _rule_pl),
    (set("áéíóöőúüű"), _any),  # Hungarian
    (set("ăâîșțşţ"), _any),  # Romanian
    (set("čćđšž"), _any),  # Croatian, Serbian, Slovenian, Bosnian
    (set("çğıöşüâî"), _any),  # Turkish
    (set("ąčęėįšųūž"), _any),  # Lithuanian
    (set("āčēģīķļņšūž"), _any),  # Latvian
    (set("äöõüšž"), _rule_et),
    (set("çë"), _any),  # Albanian
]
_LATIN_LETTERS = set().union(*(letters for letters, _ in _LATIN))

#: signs that may stand next to a letter: apostrophes, quotes, dashes, ° (°C), ² ³ (m²), ™ ® ©
_EDGE_OK = set("’‘“”„«»‹›–—…°²³™®©€£¥$¿¡•")
_OPENING_ONLY = set("„¿¡")  # never at a word's end


_ELIDED = re.compile(r"(?i)^(l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|dell|all|dall|nell|sull|un|o)$")
_CONTRACTED = re.compile(r"(?i)^(s|t|d|m|ll|re|ve|n)$")


def _inner_ok(word: str, i: int) -> bool:
    """A sign between two letters: an apostrophe of a contraction or an elision (don’t, l’été,
    O’Brien), a dash, or the middle dot of Catalan's l·l."""
    c = word[i]
    if c in "’'":
        head = re.split(r"[^\w]", word[:i])[-1]
        tail = re.split(r"[^\w]", word[i + 1:])[0]
        return bool(_ELIDED.match(head) or _CONTRACTED.match(tail))
    if c == "·":
        return word[i - 1:i + 2].lower() == "l·l"
    return c in "–—"


def _script(c: str) -> str:
    if c.isascii():
        return "LATIN"
    name = unicodedata.name(c, "")
    head = name.split(" ", 1)[0]
    if head.startswith(("CJK", "HIRAGANA", "KATAKANA", "IDEOGRAPHIC", "FULLWIDTH")):
        return "CJK"
    if head == "HALFWIDTH":
        return "HALFWIDTH"
    if head == "HANGUL":
        return "HANGUL"
    return head


def natural(word: str, page: str) -> bool:
    """Whether WORD (read in PAGE) reads as a word is written; see the module's docstring."""
    letters = [c for c in word if c.isalpha()]
    scripts = {_script(c) for c in letters if not c.isascii()}
    for i, c in enumerate(word):
        category = unicodedata.category(c)
        if c in "ºª" and not (word[i - 1] if i else "").isdigit():  # ordinals: 1º, 2ª
            return False
        if c.isascii() or category in ("Lu", "Ll", "Lt", "Lo") or category == "Lm" and "CJK" in scripts:
            continue
        if category == "Nd":  # a digit of another script beside a letter: a misread
            if (word[i - 1] if i else "").isalpha() or _after(word, i).isalpha():
                return False
            continue
        if category == "Cc":  # a control character: only the bytes cp1252 leaves undefined
            if not (page == "latin-1" and ord(c) in _CP1252_HOLES):
                return False
            continue
        if category in ("Co", "Cn", "Cs", "Mn") and scripts != {"THAI"}:
            return False
        if category == "Zs":
            continue
        before = word[i - 1] if i else ""
        after = _after(word, i)
        beside_letter = before.isalpha() or after.isalpha()
        if (before.isalpha() and after.isalpha() and "CJK" not in scripts and scripts != {"THAI"}
                and not _inner_ok(word, i)):
            return False
        if beside_letter and c not in _EDGE_OK and "CJK" not in scripts and scripts != {"THAI"}:
            return False
        if c in _OPENING_ONLY and not after:
            return False
        if c in "€£¥$" and (before.isalpha() or after.isalpha()):
            return False

    if len(scripts) > 1:
        return False
    signs = [c for c in word if not c.isascii() and not c.isalnum() and not c.isspace()]
    if any("\u2500" <= c <= "\u259f" for c in signs) or (len(signs) >= 2 and not letters):
        return False  # box drawing, or a word of signs only
    script = next(iter(scripts), "LATIN")
    if script not in ("LATIN", "CJK", "HALFWIDTH") and any(c.isascii() for c in letters):
        return False  # Cyrillic, Greek, Hebrew, ... beside Latin letters in one word
    for a, b in zip(word, word[1:], strict=False):
        if a.isalpha() and b.isalpha() and a.islower() and b.isupper() and not b.isascii():
            return False
    for a, b, c in zip(word, word[1:], word[2:], strict=False):
        if a.isupper() and b.isupper() and c.islower() and not b.isascii():
            return False  # RÇunion
    if script == "LATIN":
        return _natural_latin(word.lower(), letters)
    if script == "CYRILLIC":
        return _natural_cyrillic(word.lower(), letters)
    if script == "CJK":
        return _natural_cjk(word, page)
    if script == "GREEK":
        return _natural_greek(word.lower())
    if script == "THAI":
        return _natural_thai(word)
    if script == "HALFWIDTH":  # half-width kana (old Japanese systems' names) stand apart
        return not any(c.isascii() and c.isalpha() for c in word)
    return True


def _natural_latin(word: str, letters: list[str]) -> bool:
    accented = [c for c in word if c.isalpha() and not c.isascii()]
    if any(c not in _LATIN_LETTERS for c in accented):
        return False
    if len(letters) >= 6 and len(accented) * 4 > len(letters) * 3:
        return False
    run = 0
    for c in word:
        run = run + 1 if c.isalpha() and not c.isascii() else 0
        if run >= 5:
            return False
    for i, (a, b) in enumerate(zip(word, word[1:], strict=False)):
        if a in _GRAVE and _vowel(b):  # à è ì ò ù end a syllable: never before a vowel
            return False
        if b in _GRAVE and a in "aeo" and word[i:i + 2] != "où":  # nor after a, e, o (più, où)
            return False
        if a != b and not a.isascii() and not b.isascii() and _vowel(a) and _vowel(b):
            return False  # two different accented vowels side by side
        if a in "aou" and b in "äöü":  # vowel harmony, and German, never put these side by side
            return False
    mine = set(accented)
    return any(mine <= have and rule(word) for have, rule in _LATIN)


_RUSSIAN = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
_CYRILLIC_ALPHABETS = [
    _RUSSIAN,  # and Bulgarian
    set("абвгґдеєжзиіїйклмнопрстуфхцчшщьюя'"),  # Ukrainian
    set("абвгдеёжзійклмнопрстуўфхцчшыьэюя"),  # Belarusian
    set("абвгдђежзијклљмнњопрстћуфхцчџш"),  # Serbian
    set("абвгдѓежзѕијклљмнњопрстќуфхцчџш"),  # Macedonian
]


def _natural_cyrillic(word: str, letters: list[str]) -> bool:
    text = "".join(c for c in word if c.isalpha())
    if not text:
        return True
    if not any(set(text) <= alphabet for alphabet in _CYRILLIC_ALPHABETS):
        return False
    if text[0] in "ьъы":
        return False
    for i, c in enumerate(text):
        before = text[i - 1] if i else ""
        if c in "ьъ" and before in _CYRILLIC_VOWELS:
            return False
        if c == "й" and before and before not in _CYRILLIC_VOWELS:
            return False
        if c in "ыяю" and before in ("ж", "ш", "ч", "щ"):
            return False
    if text[-1] == "ъ" and len(text) > 1:
        return False
    capitals = all(c.isupper() for c in letters)
    if len(text) >= 3 and not any(c in _CYRILLIC_VOWELS for c in text) and not (capitals and len(text) <= 4):
        return False
    return True


_GREEK_VOWELS = set("αεηιουωάέήίόύώϊϋΐΰ")
_GREEK_TONOS = set("άέήίόύώΐΰ")


def _natural_greek(word: str) -> bool:
    """Greek words of two syllables or more carry one accent (tonos) when not in capitals;
    every word of three letters or more has a vowel, and no four consonants run together."""
    text = "".join(c for c in word if c.isalpha())
    groups = len(re.findall(f"[{''.join(_GREEK_VOWELS)}]+", text))
    if len(text) >= 3 and not groups:
        return False
    if re.search(f"[^{''.join(_GREEK_VOWELS)}]{{4}}", text):
        return False
    return groups < 2 or any(c in _GREEK_TONOS for c in text)


def _natural_thai(word: str) -> bool:
    """Thai vowel signs and tone marks follow a consonant; the leading vowels precede one."""
    text = "".join(c for c in word if not c.isascii())
    for i, c in enumerate(text):
        before = text[i - 1] if i else ""
        if unicodedata.category(c) == "Mn" and not (_thai_consonant(before) or
                                                    before and unicodedata.category(before) == "Mn"):
            return False
        if c in "เแโใไ" and not _thai_consonant(text[i + 1] if i + 1 < len(text) else ""):
            return False
    return True


def _thai_consonant(c: str) -> bool:
    return "\u0e01" <= c <= "\u0e2e"


def _natural_cjk(word: str, page: str) -> bool:
    """CJK text: no lone ideograph between Latin letters (a misread accent), and for the
    Chinese pages the characters of everyday text (a misread reads as rare ones)."""
    for i, c in enumerate(word):
        if _script(c) == "CJK" and c.isalpha():
            before = word[i - 1] if i else ""
            after = _after(word, i)
            alone = _script(before) != "CJK" and _script(after) != "CJK"
            if alone and (before.isascii() and before.isalnum() or after.isascii() and after.isalnum()):
                return False  # one ideograph beside Latin letters or digits: a misread accent
            if before.isascii() and before.islower() or after.isascii() and after.islower():
                return False  # ideographs glued to small Latin letters (Br璉馥): a misread
    if page == "gb18030":
        try:
            "".join(c for c in word if not c.isascii()).encode("gb2312")
        except UnicodeEncodeError:
            return False
    if page == "big5":
        for c in word:
            if not c.isascii():
                code = c.encode("big5")
                if len(code) == 2 and not 0xA440 <= int.from_bytes(code, "big") <= 0xC67E:
                    return False  # beyond Big5's everyday characters
    return True


# --- the verdict ---------------------------------------------------------------------------------


def _western(present: bytes) -> str:
    """cp1252, or ISO 8859-1 where the file holds a byte cp1252 leaves undefined (Windows shows
    those as ISO 8859-1 does)."""
    try:
        present.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def mixes_scripts(text: str) -> bool:
    """Whether a word of TEXT mixes scripts or holds characters no text holds (unassigned,
    private use, controls): what a short export in another encoding looks like when its bytes
    happen to be valid UTF-8 (GBK's 预约 is ԤԼ), where odd but real text (a run of é) does not."""
    for word in _WORD.findall(text):
        if any(unicodedata.category(c) in ("Cn", "Co", "Cc") and not c.isascii() for c in word):
            return True
        scripts = {_script(c) for c in word if c.isalpha()}
        if len(scripts - {"CJK", "LATIN"}) > 1 or (scripts - {"CJK", "LATIN"} and "LATIN" in scripts
                                                    and any(c.isalpha() and c.isascii() for c in word)):
            return True
    return False


def reads_naturally(text: str, page: str) -> bool:
    """Whether every word of TEXT (read in PAGE) reads naturally."""
    return not _SPLIT.search(text) and all(natural(w, page) for w in _WORD.findall(text))


def _reading(page: str, words: list[bytes]) -> tuple[list[str] | None, str | None]:
    """The words as PAGE reads them (None when it can't decode one), and the first word that
    does not read naturally (None when every one does)."""
    texts: list[str] = []
    for raw in words:
        try:
            text = raw.decode(page)
        except UnicodeDecodeError:
            return None, None
        if not reads_naturally(text, page):
            return texts, text  # one word is enough to rule a reading out
        texts.append(text)
    return texts, None


def decide(words: dict[bytes, int], present: bytes, where: str, line_of: dict[int, int]) -> Verdict:
    """The code page to read a file in from its words beyond ASCII (with their first offsets),
    the byte values it holds beyond ASCII, and WHERE it stopped being UTF-8 (for the note).
    LINE_OF numbers the offsets of the words, for the refusals."""
    ordered = sorted(words, key=words.__getitem__)
    western = _western(present)
    pages = [(western, TITLES[western])] + SUPPORTED[1:] + OTHERS
    natural_ones: list[tuple[str, list[str]]] = []
    odd_ones: list[tuple[str, str]] = []
    for page, _ in pages:
        try:
            present.decode(page) if page not in ("cp932", "gb18030", "big5", "euc_kr", "euc_jp") else None
        except UnicodeDecodeError:
            continue
        texts, odd = _reading(page, ordered)
        if texts is None:
            continue
        if odd is None:
            natural_ones.append((page, texts))
        else:
            odd_ones.append((page, odd))
    if len(natural_ones) > 1:  # a control character is no evidence: another reading wins
        natural_ones = [(page, texts) for page, texts in natural_ones if page != "latin-1"]
    groups: dict[tuple[str, ...], list[str]] = {}
    for page, texts in natural_ones:
        groups.setdefault(tuple(texts), []).append(page)
    supported = {page for page, _ in SUPPORTED} | {"latin-1"}
    if not groups:
        shown = "; ".join(f'{p} reads "{_short(t)}"' for p, t in odd_ones[:3])
        return Verdict(None, f"is not UTF-8 ({where}), and no code page etl knows reads its "
                             f"accented text plainly ({shown}); pass --encoding with the file's "
                             "encoding, or save it as UTF-8")
    if len(groups) > 1:
        first = next(iter(groups.values()))
        rest = [pages_ for pages_ in list(groups.values())[1:]]
        if first[0] == western and all(p in _CENTRAL for pages_ in rest for p in pages_):
            mine, theirs = list(groups)[:2]
            i = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
            note = (f"not UTF-8 ({where}); its accented text reads as {western} "
                    f'({TITLES[western]}), e.g. "{_short(mine[i])}"; {rest[0][0]} would read '
                    f'"{_short(theirs[i])}"')
            return Verdict(western, note, len(groups), f'{western} reads "{_short(mine[i])}"')
        keys = list(groups)
        i = next((i for i in range(len(ordered)) if len({k[i] for k in keys}) > 1), 0)
        listed = "; ".join(f'{"/".join(ps)} reads "{_short(k[i])}"' for k, ps in groups.items())
        return Verdict(None, f"is not UTF-8 ({where}), and its accented text reads plainly in "
                             f"several code pages ({listed}, line {line_of[words[ordered[i]]]}); "
                             "pass --encoding with the right one", len(groups), listed)
    reading, group = next(iter(groups.items()))
    chosen = next((p for p in group if p in supported), None)
    sample = _short(reading[0])
    if chosen is None:
        return Verdict(None, f"is not UTF-8 ({where}); its accented text reads as {group[0]} "
                             f'({TITLES[group[0]]}), e.g. "{sample}", which etl reads only when '
                             f"told: pass --encoding {group[0]} (or save the file as UTF-8)", 1,
                       f'{group[0]} reads "{sample}"')
    return Verdict(chosen, f"not UTF-8 ({where}); its accented text reads as {chosen} "
                           f'({TITLES[chosen]}), e.g. "{sample}"', 1, f'{chosen} reads "{sample}"')


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
