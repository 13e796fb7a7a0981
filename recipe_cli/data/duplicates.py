"""Duplicate questions: exact (equal after normalising) and near (MinHash LSH over word 3-grams, datasketch)."""

from __future__ import annotations

from recipe_cli.data.decontamination import normalise_words, word_ngrams

SHINGLE_WORDS = 3  # word 3-grams: two GSM8K questions that differ in one number share most of them
NUM_PERM = 128  # MinHash permutations: Jaccard estimates within about +-0.09 (1/sqrt(128))


def question_key(question: str) -> str:
    """The question as compared for exact duplicates: its normalised words.

    >>> question_key("How many  apples?") == question_key("how many apples")
    True
    """
    return " ".join(normalise_words(question))


class NearDuplicates:
    """Questions seen so far, in a MinHash LSH index: ``seen`` tells whether a new one is near one of them.

    The first of a group of near-duplicates is kept, the later ones are dropped (a streaming
    dedup, so ``max_samples`` can stop reading early). The threshold is the estimated Jaccard
    similarity of the two questions' word 3-gram sets.
    """

    def __init__(self, threshold: float, seed: int):
        try:
            from datasketch import MinHash, MinHashLSH
        except ImportError as error:  # an install without the dependency
            from recipe_cli.errors import RecipeError

            raise RecipeError(
                "dataset.near_duplicates needs datasketch: `pip install datasketch`, or remove near_duplicates"
            ) from error
        self._minhash = MinHash
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.seed = seed
        self.count = 0

    def seen(self, question: str) -> str | None:
        """The key of a kept question this one is near to (and remember it when there is none), else None."""
        signature = self._minhash(num_perm=NUM_PERM, seed=self.seed)
        for gram in word_ngrams(question, SHINGLE_WORDS):
            signature.update(" ".join(gram).encode())
        match = self.lsh.query(signature)
        if match:
            return match[0]
        self.lsh.insert(str(self.count), signature)
        self.count += 1
        return None
