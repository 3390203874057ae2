"""Which encoding a CSV file is in, decided from the evidence of the whole file.

A file is never decoded in a code page it only happens to fit. A byte-order mark decides; else
a file that decodes as UTF-8 is UTF-8; a file that is mostly UTF-8 with some bytes that are not
is a damaged UTF-8 file (the caller names the row and byte); only a file with no UTF-8 in it
at all is read in a legacy code page, the one that reads its accented text most plausibly,
and the caller says which and shows a sample so a wrong guess is seen at once.

General detectors (charset-normalizer, chardet) were measured on short spreadsheet exports and
picked cp1250 for Russian cp1251 text and mac_iceland for MacRoman: a handful of accented words
is too little for their statistics, so the few code pages exports come in are judged here by
what a misread looks like (a symbol inside a word, a capital after a small letter, two scripts
in one word, a Latin word made mostly of accents).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

_BLOCK = 1 << 20
_EVIDENCE_BYTES = 4 << 20  # bytes of a non-UTF-8 file whose accented words are scored

#: the code pages exports come in, most common first: a tie goes to the earlier one
CODE_PAGES = [
    ("cp1252", "Windows Western European"),
    ("latin-1", "ISO 8859-1"),
    ("cp1250", "Windows Central European"),
    ("cp1251", "Windows Cyrillic"),
    ("cp932", "Shift-JIS, Japanese"),
    ("mac_roman", "Mac OS Roman"),
    ("cp850", "DOS Western European"),
]
_ALIASES = {"utf-8-sig": "utf-8", "utf8": "utf-8", "utf-16": "utf-16", "utf16": "utf-16"}


@dataclass(frozen=True)
class Encoding:
    """How to decode a file: a codec that knows nothing of BOMs, after `bom` bytes."""

    codec: str
    bom: int = 0
    name: str = ""
    note: str | None = None  # why it was chosen, when it was a choice among code pages
    quotes: int = -1  # quote characters in the whole file, when counted

    @property
    def python_name(self) -> str:
        """The codec that decodes the whole file, BOM included (as `bytes.decode` takes it)."""
        if self.bom and self.codec == "utf-8":
            return "utf-8-sig"
        if self.bom:
            return "utf-16"
        return self.codec


@dataclass(frozen=True)
class Damaged:
    """The file is not valid in `encoding`: the first bad byte is at `offset`."""

    encoding: Encoding
    offset: int
    byte: int
    forced: bool


@dataclass(frozen=True)
class Refused:
    """The file's bytes contradict the encoding asked for."""

    reason: str


def _canonical(codec: str) -> str:
    return codecs.lookup(codec).name


def binary_kind(head: bytes) -> str | None:
    """What a file that is not text is, by its first bytes, and what to do with it."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        if b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet" in head[:200]:
            return "an OpenDocument spreadsheet (.ods), not CSV; save it as .xlsx or CSV"
        if b"[Content_Types].xml" in head or b"xl/" in head:
            return "an Excel workbook, not CSV; rename it to .xlsx, or save it as CSV"
        return "a zip archive, not CSV; unzip it and pass the CSV inside"
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed, not CSV; decompress it first (gunzip)"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "an old Excel .xls workbook (or another Office file), not CSV; save it as .xlsx or CSV"
    if head.startswith(b"%PDF"):
        return "a PDF document, not CSV"
    if head.startswith((b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"\x28\xb5\x2f\xfd")):
        return "a compressed archive, not CSV; decompress it first"
    return None


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 written without a BOM shows as a zero byte beside every ASCII character."""
    sample = head[: 4096 & ~1]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.6 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def first_bad_byte(path: str, codec: str, start: int = 0) -> tuple[int, int] | None:
    """(offset, byte) of the first byte CODEC can't decode, reading block by block from START."""
    return _scan(path, codec, start)[0]


def _scan(path: str, codec: str, start: int = 0) -> tuple[tuple[int, int] | None, int]:
    """The first byte CODEC can't decode (offset, byte), if any, and the quotes in the text."""
    if codec == "utf-8":
        quotes = _utf8_quotes(path, start)
        if quotes is not None:
            return None, quotes
    decoder = codecs.getincrementaldecoder(codec)()
    done, quotes = start, 0
    with open(path, "rb") as f:
        f.seek(start)
        while block := f.read(_BLOCK):
            pending = len(decoder.getstate()[0])
            try:
                quotes += decoder.decode(block).count('"')
            except UnicodeDecodeError as exc:
                offset = done - pending + exc.start
                return (offset, _byte_at(path, offset)), quotes
            done += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            offset = done - len(exc.object) + exc.start
            return (offset, _byte_at(path, offset)), quotes
    return None, quotes


def _utf8_quotes(path: str, start: int = 0) -> int | None:
    """The quotes of a file that is valid UTF-8 from START, or None if it is not: Arrow's UTF-8
    check (which refuses what Python's codec refuses) without decoding the text, several times
    faster than the codec; the codec then finds where a file that fails goes wrong."""
    import pyarrow as arrow

    quotes, carry = 0, b""
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            block = f.read(_BLOCK)
            if not block:
                return quotes if _valid_utf8(arrow, carry) else None
            quotes += block.count(b'"')
            block = carry + block
            cut = len(block)  # a character the block cuts in two waits for the next block
            while cut > max(0, len(block) - 4) and block[cut - 1] & 0xC0 == 0x80:
                cut -= 1
            if cut and block[cut - 1] >= 0xC0:
                cut -= 1
            if not _valid_utf8(arrow, block[:cut]):
                return None
            carry = block[cut:]


def _valid_utf8(arrow: Any, data: bytes) -> bool:
    if not data:
        return True
    offsets = arrow.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = arrow.Array.from_buffers(arrow.large_string(), 1, [None, offsets, arrow.py_buffer(data)])
    try:
        text.validate(full=True)
    except arrow.ArrowInvalid:
        return False
    return True


def _byte_at(path: str, offset: int) -> int:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(1)
    return data[0] if data else 0


def choose(path: str, forced: str | None) -> Encoding | Damaged | Refused:
    """The file's encoding from its bytes (or the one forced), or why it can't be read."""
    with open(path, "rb") as f:
        head = f.read(4096)
    bom = _bom(head)
    if forced is not None:
        return _forced(path, forced, bom, head)
    if bom is not None:
        return _checked(path, bom, forced=False)
    utf16 = _utf16_without_bom(head)
    if utf16 is not None:
        return _checked(path, Encoding(utf16, 0, f"{utf16.upper()} (no BOM)"), forced=False)
    bad, quotes = _scan(path, "utf-8")
    if bad is None:
        return Encoding("utf-8", 0, "UTF-8", quotes=quotes)
    utf8, broken, high = _utf8_evidence(path)
    if utf8 >= broken:
        return Damaged(Encoding("utf-8", 0, "UTF-8"), bad[0], bad[1], forced=False)
    return _code_page(path, bad, high)


def _bom(head: bytes) -> Encoding | None:
    if head.startswith(codecs.BOM_UTF8):
        return Encoding("utf-8", 3, "UTF-8 with BOM")
    if head.startswith(codecs.BOM_UTF16_LE):
        return Encoding("utf-16-le", 2, "UTF-16 LE with BOM")
    if head.startswith(codecs.BOM_UTF16_BE):
        return Encoding("utf-16-be", 2, "UTF-16 BE with BOM")
    return None


def _checked(path: str, encoding: Encoding, forced: bool) -> Encoding | Damaged:
    bad, quotes = _scan(path, encoding.codec, encoding.bom)
    if bad is not None:
        return Damaged(encoding, bad[0], bad[1], forced)
    return Encoding(encoding.codec, encoding.bom, encoding.name, encoding.note, quotes)


def _forced(path: str, forced: str, bom: Encoding | None, head: bytes) -> Encoding | Damaged | Refused:
    codec = _canonical(forced)  # LookupError for an unknown name: the caller says so
    if bom is not None:
        family = _canonical(bom.codec)
        if codec in (family, "utf-8-sig" if family == "utf-8" else "utf-16"):
            return _checked(path, bom, forced=True)  # the BOM is not part of the first header
        return Refused(f"starts with a {bom.name.replace(' with BOM', '')} byte-order mark, so it is "
                       f"not {forced}; leave out --encoding, or pass --encoding {bom.codec}")
    if codec == "utf-16":
        codec = _utf16_without_bom(head) or "utf-16-le"
    if codec == "utf-8-sig":
        codec = "utf-8"
    return _checked(path, Encoding(codec, 0, forced), forced=True)


def _utf8_evidence(path: str) -> tuple[int, int, np.ndarray]:
    """(UTF-8 characters beyond ASCII, bytes that are not UTF-8, which byte values occur)."""
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    utf8 = broken = 0
    high = np.zeros(256, dtype=np.int64)  # per byte value, how often it occurs
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            high += np.bincount(np.frombuffer(block, dtype=np.uint8), minlength=256)
            text = decoder.decode(block)
            escaped = len(_ESCAPED.findall(text))
            broken += escaped
            utf8 += len(_BEYOND_ASCII.findall(text)) - escaped
    return utf8, broken, high


_ESCAPED = re.compile("[\udc80-\udcff]")
_BEYOND_ASCII = re.compile("[^\x00-\x7f]")


def _code_page(path: str, bad: tuple[int, int], counts: np.ndarray) -> Encoding | Damaged:
    """The code page that decodes the file and reads its accented words most plausibly."""
    present = bytes(int(b) for b in np.flatnonzero(counts[128:]) + 128)
    lines = _accented_lines(path)
    scored = []
    for rank, (codec, title) in enumerate(CODE_PAGES):
        if codec == "cp932":
            if first_bad_byte(path, codec) is not None:
                continue
        else:
            try:
                present.decode(codec)
            except UnicodeDecodeError:
                continue
        text = "\n".join(line.decode(codec, "replace") for line in lines)
        scored.append((_oddness(text), rank, codec, title, text))
    if not scored:  # latin-1 decodes every byte, so this does not happen
        return Damaged(Encoding("utf-8", 0, "UTF-8"), bad[0], bad[1], forced=False)
    scored.sort()
    _, _, codec, title, text = scored[0]
    sample = next((w for w in _WORD.findall(text) if _BEYOND_ASCII.search(w)), "")
    rivals = [c for _, _, c, _, t in scored[1:] if t != text and _oddness(t) == scored[0][0]]
    note = (f"not UTF-8 (byte 0x{bad[1]:02X} at offset {bad[0]}); its accented text reads best as "
            f"{codec} ({title})" + (f', e.g. "{sample}"' if sample else "")
            + (f"; {', '.join(rivals)} would read it as plausibly" if rivals else ""))
    quotes = int(counts[ord('"')])  # the quote is 0x22 in every one of these code pages
    return Encoding(codec, 0, codec, note, quotes)


_WORD = re.compile(r"[^\s,;|\t\"']+")


def _accented_lines(path: str, most: int = 500) -> list[bytes]:
    """Lines with bytes beyond ASCII from the start of the file: the evidence to judge."""
    found: list[bytes] = []
    with open(path, "rb") as f:
        data = f.read(_EVIDENCE_BYTES)
    for line in data.splitlines():
        if max(line, default=0) >= 128:
            found.append(line)
            if len(found) >= most:
                break
    return found


def _script(char: str) -> str:
    if char.isascii():
        return "LATIN"
    name = unicodedata.name(char, "")
    head = name.split(" ", 1)[0]
    if head in ("CJK", "HIRAGANA", "KATAKANA", "HALFWIDTH", "FULLWIDTH", "IDEOGRAPHIC"):
        return "CJK"
    return head


def _oddness(text: str) -> float:
    """How much text looks misread: the share of words with beyond-ASCII characters that have
    a symbol between two letters, a capital after a small letter, two scripts, or (Latin)
    more accented letters than plain ones."""
    words = [w for w in _WORD.findall(text) if _BEYOND_ASCII.search(w)]
    if not words:
        return 0.0
    odd = 0.0
    for word in words:
        letters = [c for c in word if c.isalpha()]
        scripts = {_script(c) for c in letters}
        penalty = 0.0
        if len(scripts) > 1:
            penalty += 1
        for a, b, c in zip(word, word[1:], word[2:], strict=False):
            if a.isalpha() and c.isalpha() and unicodedata.category(b)[0] in "PS" and not b.isascii():
                penalty += 1
                break
        for a, b in zip(word, word[1:], strict=False):
            if a.islower() and b.isupper() and not b.isascii():
                penalty += 1
                break
        if any(unicodedata.category(c) in ("Cc", "Co", "Cn") and not c.isascii() for c in word):
            penalty += 0.5
        accented = sum(1 for c in letters if not c.isascii())
        if scripts == {"LATIN"} and len(letters) >= 3 and accented * 2 > len(letters):
            penalty += 1
        odd += min(penalty, 2)
    return odd / len(words)
