"""Which encoding a CSV file is in, decided from the evidence of the whole file.

A file is never decoded in an encoding it only happens to fit. A byte-order mark decides; else
a file that decodes as UTF-8 is UTF-8; a file that is mostly UTF-8 with some bytes that are not
is a damaged UTF-8 file (the caller names the row and byte); a file whose UTF-8 lines and other
lines each read naturally is two exports pasted together, and refused; only a file with no
UTF-8 in it is read in a code page, and only in one its whole text leaves no doubt about (see
`etl.read.codepages`); else it is refused with the candidates, and `--encoding` is the way on.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from etl.read import codepages

_BLOCK = 1 << 20
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
            return self.codec[:6]  # utf-16, utf-32
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


#: codecs Python has that read text, yet are no character set a file is saved in: each would
#: read a file's bytes as something else (backslashes as escapes, labels of domain names)
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})


def _canonical(codec: str) -> str:
    """CODEC's own name; LookupError for a name Python has no codec of, or one that is no
    character set (rot13, base64, hex: bytes to bytes or text to text; `_NOT_CHARSETS`)."""
    info = codecs.lookup(codec)
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        raise LookupError(f"{codec!r} is not a character set")
    return info.name


def binary_kind(head: bytes) -> str | None:
    """What a file that is not text is, by its first bytes, and what to do with it."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        if b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet" in head[:200]:
            return "an OpenDocument spreadsheet (.ods), not CSV; save it as .xlsx or CSV"
        if b"xl/workbook.bin" in head:
            return "an Excel binary workbook (.xlsb), not CSV; save it as .xlsx or CSV"
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
    # text in another script (Cyrillic, Greek, ...) has few zero bytes; its line breaks are
    # still a zero beside a LF, which no 8-bit text holds, and it decodes without controls
    for codec, newline in (("utf-16-le", b"\n\x00"), ("utf-16-be", b"\x00\n")):
        at = sample.find(newline)
        if at >= 0 and at % 2 == 0:
            try:
                text = sample.decode(codec, "ignore")
            except UnicodeDecodeError:  # pragma: no cover - "ignore" does not raise
                continue
            controls = sum(1 for c in text if c < " " and c not in "\t\r\n")
            if not controls and text.count("\n") >= 1:
                return codec
    return None


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
        doubt = _utf8_by_chance(path) if os.path.getsize(path) <= _DOUBTED_UTF8 else None
        return doubt or Encoding("utf-8", 0, "UTF-8", quotes=quotes)
    utf8, broken, high = _utf8_evidence(path)
    return _not_utf8(path, bad, high, mostly_utf8=utf8 >= broken)


#: a file up to this size that is valid UTF-8 has its text checked: a short export in another
#: encoding can be valid UTF-8 by chance (GBK's 预约 is UTF-8's ԤԼ); in a larger one that
#: chance is nil, and the check would cost every large import a pass over its text
_DOUBTED_UTF8 = 4 << 20
_FEW_WORDS = 200


#: the IPA Extensions and Spacing Modifier Letters: what an accented capital and a symbol of
#: Windows' code pages (É®, Ê») are when read as UTF-8
_PHONETIC = re.compile("[\u0250-\u02ff]")


def _utf8_by_chance(path: str) -> Refused | None:
    """A refusal when the file's UTF-8 text reads unnaturally and a code page reads it all
    naturally (see `etl.read.codepages`)."""
    words = _words(path)
    if len(words) > _FEW_WORDS:  # so many UTF-8 sequences are not there by chance
        return None
    # a word that mixes scripts (GBK's 预约 as ԤԼ), or holds a letter of the phonetic alphabet
    # (cp1252's "CAFÉ®" as CAFɮ: an accented capital and a symbol are such a letter in UTF-8);
    # not odd but real text (a run of é), which some code page would read "naturally" too
    other = {w: o for w, o in words.items()
             if codepages.mixes_scripts(text := w.decode("utf-8")) or _PHONETIC.search(text)}
    if not other:
        return None
    present = bytes(sorted(set(b"".join(words)) - set(range(128))))
    verdict = codepages.decide(words, present, "", _lines_at(path, sorted(set(words.values()))))
    if not verdict.readings:
        return None
    sample = min(other, key=other.__getitem__)
    return Refused(f'is valid UTF-8, but its text reads unnaturally so ("{sample.decode()}"), and '
                   f"naturally in another encoding ({verdict.candidates}); pass --encoding with the "
                   "right one (--encoding utf-8 reads it as UTF-8 all the same)")


def _words(path: str) -> dict[bytes, int]:
    with open(path, "rb") as f:
        return codepages.words_of(iter(lambda: f.read(_BLOCK), b""))


def _split_utf8(words: dict[bytes, int]) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """The words that are UTF-8 and read naturally so, and the others."""
    plain: dict[bytes, int] = {}
    other: dict[bytes, int] = {}
    for word, offset in words.items():
        try:
            text = word.decode("utf-8")
        except UnicodeDecodeError:
            other[word] = offset
            continue
        if codepages.reads_naturally(text, "utf-8"):
            plain[word] = offset
        else:
            other[word] = offset
    return plain, other


def _bom(head: bytes) -> Encoding | None:
    if head.startswith(codecs.BOM_UTF32_LE):  # before UTF-16's, which begins the same
        return Encoding("utf-32-le", 4, "UTF-32 LE with BOM")
    if head.startswith(codecs.BOM_UTF32_BE):
        return Encoding("utf-32-be", 4, "UTF-32 BE with BOM")
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
        if codec in (family, "utf-8-sig" if family == "utf-8" else family[:6]):
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


def _not_utf8(path: str, bad: tuple[int, int], counts: np.ndarray, mostly_utf8: bool
              ) -> Encoding | Damaged | Refused:
    """The code page the whole file's accented words read naturally in (see `etl.read.codepages`);
    else a damaged UTF-8 file (mostly UTF-8, one bad byte named), or two encodings mixed (its
    UTF-8 words read naturally, and its others in a code page), or no encoding to be sure of."""
    words = _words(path)
    present = bytes(int(b) for b in np.flatnonzero(counts[128:]) + 128)
    lines = _lines_at(path, sorted(set(words.values())) + [bad[0]])
    where = f"byte 0x{bad[1]:02X} on line {lines[bad[0]]}"
    verdict = codepages.decide(words, present, where, lines)
    if verdict.codec is not None:
        quotes = int(counts[ord('"')])  # the quote is 0x22 in every code page read without --encoding
        return Encoding(verdict.codec, 0, verdict.codec, verdict.note, quotes)
    if mostly_utf8:
        return Damaged(Encoding("utf-8", 0, "UTF-8"), bad[0], bad[1], forced=False)
    plain, other = _split_utf8(words)
    if plain and other:
        rest = bytes(sorted(set(b"".join(other)) - set(range(128))))
        mixed = codepages.decide(other, rest, where, lines)
        if mixed.codec is not None:
            first_utf8 = min(plain, key=plain.__getitem__)
            first_other = min(other, key=other.__getitem__)
            return Refused(
                f'mixes two encodings: line {lines[plain[first_utf8]]} is UTF-8 ("{first_utf8.decode()}"), '
                f"line {lines[other[first_other]]} is {mixed.codec} "
                f'("{first_other.decode(mixed.codec)}"); save the export again in one encoding (UTF-8), '
                "or pass --encoding to read it all in one")
    return Refused(verdict.note)


def _lines_at(path: str, offsets: list[int]) -> dict[int, int]:
    """The line number (from 1) of each of OFFSETS (sorted)."""
    found: dict[int, int] = {}
    line, done, k = 1, 0, 0
    with open(path, "rb") as f:
        while k < len(offsets) and (block := f.read(_BLOCK)):
            while k < len(offsets) and offsets[k] < done + len(block):
                found[offsets[k]] = line + block.count(b"\n", 0, offsets[k] - done)
                k += 1
            line += block.count(b"\n")
            done += len(block)
    for offset in offsets[k:]:
        found[offset] = line
    return found
