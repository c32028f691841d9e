"""Corpora of paired speech and motion: the workspace store, wav + bvh import, the built-in speaker."""

from racer_env.corpus.store import Clip, Corpus, CorpusError, NormStats

__all__ = ["Clip", "Corpus", "CorpusError", "NormStats"]
