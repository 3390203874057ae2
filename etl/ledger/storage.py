"""How a target stores the fields it is sent, learnt from records whose rows are known.

A server may keep an amount rounded, a text trimmed, HTML-encoded or cut short. Reconciliation
must not guess that from the record it is comparing (a guess that fits one record fits another
row's too), so the rules are learnt from evidence this program controls: a row whose record is
known (a 200 naming its Id, then a read of that record; or the only new record inside a settled
fence), and kept with the target (`Journal.target_fact`).

What is learnt is the set of rules still consistent with every observation:
- amounts: the most decimal places seen kept exactly, and where an amount came back with fewer
  places, those places and the rounding modes that fit;
- texts: which of (trimmed?, HTML-encoded?) fit, each with the range its cut length may be in.

A record is compared with a row's body field by field, as values (decimal-exact amounts,
integer ids, texts as the learnt rules make them):
- SAME: every field equals what the row sent, or what the learnt rules make of it;
- DIFFERENT: some field can't be what any rule still possible makes of the row's value;
- UNSURE: some field could be the row's under a rule not yet ruled out, but not proved:
  such a record keeps its row in doubt (never "created", never "proved absent").
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from typing import Any

from etl.validate.resources import Resource
from etl.validate.values import Kind

MODES = (ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_HALF_DOWN, ROUND_DOWN, ROUND_UP)
#: How .NET's HttpUtility.HtmlEncode writes the characters it encodes (`&` first).
_HTML = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;"))


class Match(enum.Enum):
    SAME = "same"
    DIFFERENT = "different"
    UNSURE = "unsure"


@dataclass(frozen=True)
class Comparison:
    match: Match
    different: tuple[str, ...] = ()
    unsure: tuple[str, ...] = ()


def decimal(value: Any) -> Decimal | None:
    """A JSON number (int, float, Decimal) or its text as an exact Decimal; None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def places(d: Decimal) -> int:
    exponent = d.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def trimmed(text: str) -> str:
    return re.sub(" {2,}", " ", text.strip())


def encoded(text: str) -> str:
    for plain, code in _HTML:
        text = text.replace(plain, code)
    return text


def _shaped(text: str, trim: bool, html: bool) -> str:
    return encoded(trimmed(text) if trim else text) if html else (trimmed(text) if trim else text)


@dataclass
class AmountRule:
    kept: int | None = None  # the most decimal places seen kept exactly
    #: the (places, rounding mode) pairs that fit every amount seen rounded; None while none was
    #: (a stored 0.0 shows no places: the places a server rounds to are only bounded by it)
    rounding: list[list[Any]] | None = None
    broken: bool = False  # the server does something to amounts no rule here describes

    def learn(self, sent: Decimal, stored: Decimal) -> None:
        if stored == sent:
            self.kept = max(self.kept or 0, places(sent))
            if self.rounding is not None:  # a rounding that would have changed it does not fit
                self.rounding = [[q, m] for q, m in self.rounding if _rounded(sent, q, m) == sent]
                self.broken = self.broken or not self.rounding
            return
        fits = [[q, m] for q in range(places(stored), places(sent)) for m in MODES
                if _rounded(sent, q, m) == stored]
        if self.rounding is not None:
            fits = [f for f in fits if f in self.rounding]
        self.rounding = fits
        self.broken = self.broken or not fits

    def could(self, ours: Decimal) -> set[Decimal] | None:
        """What the server may make of OURS under the roundings that fit; None when no
        rounding was ever seen."""
        if self.rounding is None:
            return None
        return {_rounded(ours, q, m) for q, m in self.rounding}

    def compare(self, ours: Decimal, theirs: Decimal) -> Match:
        if theirs == ours:
            return Match.SAME
        if self.broken:
            return Match.UNSURE  # rules that fit nothing: nothing different can be proved
        could = self.could(ours)
        if could is not None:
            if theirs not in could:
                return Match.DIFFERENT
            return Match.SAME if len(could) == 1 else Match.UNSURE
        p = places(ours)
        if (self.kept is not None and self.kept >= p) or places(theirs) >= p:
            return Match.DIFFERENT  # kept exactly at this precision, or not a rounding of ours
        if any(_rounded(ours, q, m) == theirs for q in range(places(theirs), p) for m in MODES):
            return Match.UNSURE  # a rounding the server has not been seen to do (nor not to do)
        return Match.DIFFERENT

    def exact_for(self, ours: Decimal) -> bool:
        if self.broken:
            return False
        could = self.could(ours)
        if could is not None:
            return len(could) == 1
        return self.kept is not None and self.kept >= places(ours)


def _rounded(value: Decimal, q: int, mode: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-q), rounding=mode) if places(value) > q else value


@dataclass
class TextRule:
    #: the (trim, html) shapes still possible, each with the range of its cut: [lo, hi], hi None
    #: for no cut seen (a cut at any length >= lo, or none)
    shapes: list[list[Any]] = field(default_factory=lambda: [
        [trim, html, 1, None] for trim in (False, True) for html in (False, True)])
    keeps: bool = False  # a non-empty text was seen kept (not dropped)
    broken: bool = False  # no rule here fits what the server did
    drops: bool = False  # a non-empty text was seen dropped (stored empty)

    def learn(self, sent: str, stored: str | None) -> None:
        if not sent:
            return
        if not stored:
            if not trimmed(sent):  # spaces only, trimmed away: the trimming shapes fit
                self.shapes = [s for s in self.shapes if s[0]]
                self.broken = self.broken or not self.shapes
                return
            self.drops = True
            self.broken = self.broken or self.keeps
            return
        self.keeps = True
        self.broken = self.broken or self.drops
        alive = []
        for trim, html, lo, hi in self.shapes:
            x = _shaped(sent, trim, html)
            if stored == x:
                lo = max(lo, len(x))
            elif len(stored) < len(x) and x.startswith(stored):
                lo, hi = max(lo, len(stored)), len(stored) if hi is None else min(hi, len(stored))
            else:
                continue
            if hi is None or lo <= hi:
                alive.append([trim, html, lo, hi])
        self.shapes = alive
        self.broken = self.broken or not alive

    def predicted(self, ours: str) -> set[str]:
        """What the server makes of OURS under each shape still possible: a cut where one was
        seen, else the whole text (a cut never seen is not assumed)."""
        out = set()
        for trim, html, _, hi in self.shapes:
            x = _shaped(ours, trim, html)
            out.add(x if hi is None else x[:hi])
        return out

    def _cut_unseen(self, ours: str, theirs: str) -> bool:
        """Whether THEIRS may be OURS cut at a length no record has shown yet."""
        for trim, html, lo, hi in self.shapes:
            x = _shaped(ours, trim, html)
            if hi is None and lo <= len(theirs) < len(x) and x.startswith(theirs):
                return True
        return False

    def compare(self, ours: str | None, theirs: Any) -> Match:
        if not ours:
            return Match.SAME if theirs in (None, "") else Match.DIFFERENT
        if not isinstance(theirs, str) or not theirs:
            if self.broken:
                return Match.UNSURE
            could = self.predicted(ours) if self.shapes else set()
            if "" in could:  # a text of spaces only, trimmed away
                return Match.SAME if len(could) == 1 else Match.UNSURE
            return Match.SAME if self.drops else Match.DIFFERENT if self.keeps else Match.UNSURE
        if self.drops and not self.broken:
            return Match.DIFFERENT  # the server keeps no text: one with text is not ours
        if self.broken or not self.shapes:
            return Match.SAME if theirs == ours else Match.UNSURE
        could = self.predicted(ours)
        if theirs in could:
            if len(could) == 1 or (theirs == ours and self._identity_possible()):
                return Match.SAME
            return Match.UNSURE  # shapes not told apart yet (encoded or not, trimmed or not)
        return Match.UNSURE if self._cut_unseen(ours, theirs) else Match.DIFFERENT

    def exact_for(self, ours: str) -> bool:
        """Whether a record of OURS would be compared without anything left open."""
        if self.drops and not self.broken:
            return True
        if self.broken or not self.shapes or len(self.predicted(ours)) != 1:
            return False
        return all(hi is not None or len(_shaped(ours, trim, html)) <= lo
                   for trim, html, lo, hi in self.shapes)

    def _identity_possible(self) -> bool:
        return any(not trim and not html and hi is None for trim, html, _, hi in self.shapes)


@dataclass
class Storage:
    """The storage rules of one target, per field of a resource."""

    amounts: dict[str, AmountRule] = field(default_factory=dict)
    texts: dict[str, TextRule] = field(default_factory=dict)
    learnt_from: list[int] = field(default_factory=list)  # record Ids the rules come from

    # kept as JSON with the target

    def dumps(self) -> str:
        return json.dumps({
            "amounts": {k: {"kept": r.kept, "rounding": r.rounding, "broken": r.broken}
                        for k, r in self.amounts.items()},
            "texts": {k: {"shapes": r.shapes, "keeps": r.keeps, "broken": r.broken, "drops": r.drops}
                      for k, r in self.texts.items()},
            "learnt_from": self.learnt_from[-20:],
        }, sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> Storage:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(
                amounts={k: AmountRule(v["kept"], v["rounding"], bool(v["broken"]))
                         for k, v in data.get("amounts", {}).items()},
                texts={k: TextRule([list(s) for s in v["shapes"]], bool(v["keeps"]), bool(v["broken"]),
                                   bool(v.get("drops")))
                       for k, v in data.get("texts", {}).items()},
                learnt_from=[int(i) for i in data.get("learnt_from", [])])
        except (ValueError, KeyError, TypeError):
            return cls()  # unreadable: learnt again, nothing assumed

    # learning

    def learn(self, resource: Resource, body: dict[str, Any], record: dict[str, Any]) -> bool:
        """Learn from RECORD, known to be the record BODY was sent as. True when it taught
        something (the rules changed)."""
        before = self.rules()
        for f in resource.fields:
            ours = body.get(f.name)
            if f.kind is Kind.AMOUNT:
                sent, stored = decimal(ours), decimal(record.get(f.name))
                if sent is not None and stored is not None:
                    self.amounts.setdefault(f.name, AmountRule()).learn(sent, stored)
            elif f.kind is not Kind.INTEGER and isinstance(ours, str):
                self.texts.setdefault(f.name, TextRule()).learn(ours, record.get(f.name))
        rid = record.get("Id")
        if isinstance(rid, int) and rid not in self.learnt_from:
            self.learnt_from.append(rid)
        return self.rules() != before

    def rules(self) -> str:
        """The rules alone (not where they were learnt), to tell whether a record taught any."""
        data = json.loads(self.dumps())
        data.pop("learnt_from")
        return json.dumps(data, sort_keys=True)

    def settled_for(self, resource: Resource, body: dict[str, Any]) -> bool:
        """Whether a record of BODY could be compared exactly now (nothing left UNSURE)."""
        for f in resource.fields:
            ours = body.get(f.name)
            if f.kind is Kind.AMOUNT:
                d = decimal(ours)
                rule = self.amounts.get(f.name)
                if d is not None and (rule is None or not rule.exact_for(d)):
                    return False
            elif f.kind is not Kind.INTEGER and isinstance(ours, str) and ours:
                text = self.texts.get(f.name)
                if text is None or not text.exact_for(ours):
                    return False
        return True

    def stored_form(self, resource: Resource, body: dict[str, Any]) -> str | None:
        """BODY as the target stores it, where the rules learnt say exactly (else None): rows
        of one stored form are interchangeable on the server, as identical rows are."""
        if not self.settled_for(resource, body):
            return None
        out: dict[str, Any] = {}
        for f in resource.fields:
            ours = body.get(f.name)
            if ours is None or ours == "":
                continue
            if f.kind is Kind.AMOUNT:
                d = decimal(ours)
                rule = self.amounts.get(f.name)
                if d is None or rule is None:
                    return None
                could = rule.could(d)
                if could is not None:
                    (d,) = could
                out[f.name] = str(d.normalize())
            elif f.kind is Kind.INTEGER:
                out[f.name] = str(ours)
            elif self.texts[f.name].drops:
                continue
            else:
                (only,) = self.texts[f.name].predicted(str(ours))
                out[f.name] = only
        return json.dumps(out, sort_keys=True)

    # comparing

    def compare(self, resource: Resource, record: dict[str, Any], body: dict[str, Any]) -> Comparison:
        different: list[str] = []
        unsure: list[str] = []
        for f in resource.fields:
            ours, theirs = body.get(f.name), record.get(f.name)
            if f.kind is Kind.AMOUNT:
                match = self._amount(f.name, ours, theirs)
            elif f.kind is Kind.INTEGER:
                match = _integer(ours, theirs)
            else:
                match = self.texts.get(f.name, TextRule()).compare(
                    None if ours is None else str(ours), theirs)
            if match is Match.DIFFERENT:
                different.append(f.name)
            elif match is Match.UNSURE:
                unsure.append(f.name)
        if different:
            return Comparison(Match.DIFFERENT, tuple(different), tuple(unsure))
        return Comparison(Match.UNSURE if unsure else Match.SAME, (), tuple(unsure))

    def _amount(self, name: str, ours: Any, theirs: Any) -> Match:
        a, b = decimal(ours), decimal(theirs)
        if a is None:
            return Match.SAME if theirs in (None, "") else Match.DIFFERENT
        if b is None:
            return Match.DIFFERENT
        return self.amounts.get(name, AmountRule()).compare(a, b)


def _integer(ours: Any, theirs: Any) -> Match:
    """Ids are integers, compared as such: 7 is 7 and 7.0 (a number kept as a float), never 7.9."""
    if ours is None or ours == "":
        return Match.SAME if theirs in (None, "", 0) else Match.DIFFERENT
    a, b = decimal(ours), decimal(theirs)
    if a is None or b is None:
        return Match.DIFFERENT
    return Match.SAME if a == b and a == a.to_integral_value() else Match.DIFFERENT
