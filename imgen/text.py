"""The prompt tokenizer: words outside quotes, single characters inside them.

Character-blind subword encoders are the known cause of misspelled text in
generated images: "OPEN" as one token tells the model nothing about its letters.
So quoted text is split into one token per character (`"ОК"` becomes
`<q> c:О c:К </q>`), while the rest of the prompt is a word-level vocabulary
learned from the captions with the `tokenizers` library. The pre-split happens
here in Python because it depends on quote pairing, which a regex pre-tokenizer
cannot express; the vocabulary, unknown-token handling and serialisation are the
library's, and the whole tokenizer travels inside a checkpoint as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.trainers import WordLevelTrainer

from imgen.world import vocab

PAD, UNK, QUOTE_OPEN, QUOTE_CLOSE = "<pad>", "<unk>", "<q>", "</q>"
SPECIAL_TOKENS = (PAD, UNK, QUOTE_OPEN, QUOTE_CLOSE)
CHAR_PREFIX = "c:"
SPACE_CHAR = "c:_"
QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "„": "“"}
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*", re.UNICODE)


def pre_tokenize(prompt: str) -> list[str]:
    """Split a prompt into word tokens (lower case) and per-character tokens inside quotes."""
    pieces: list[str] = []
    i = 0
    while i < len(prompt):
        ch = prompt[i]
        close = QUOTES.get(ch)
        end = prompt.find(close, i + 1) if close else -1
        # An apostrophe inside a word ("it's") is not a quote.
        is_word_apostrophe = ch == "'" and i > 0 and prompt[i - 1].isalnum()
        if close and end > i and not is_word_apostrophe:
            pieces.append(QUOTE_OPEN)
            pieces.extend(SPACE_CHAR if c == " " else CHAR_PREFIX + c for c in prompt[i + 1 : end])
            pieces.append(QUOTE_CLOSE)
            i = end + 1
            continue
        match = _WORD.match(prompt, i)
        if match:
            pieces.append(match.group(0).lower())
            i = match.end()
        else:
            i += 1
    return pieces


def character_tokens() -> list[str]:
    """Every character a quoted text may hold, as tokens: always in the vocabulary."""
    return [SPACE_CHAR if c == " " else CHAR_PREFIX + c for c in sorted(vocab.TEXT_CHARACTERS)]


def train_text_tokenizer(captions: Iterable[str], min_frequency: int = 1) -> Tokenizer:
    """Learn the word vocabulary from `captions`; all characters and specials are always included."""
    tokenizer = Tokenizer(WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    trainer = WordLevelTrainer(
        min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS) + character_tokens(), show_progress=False
    )
    words = (" ".join(token for token in pre_tokenize(c) if not token.startswith(CHAR_PREFIX)) for c in captions)
    tokenizer.train_from_iterator(words, trainer=trainer)
    return tokenizer


class PromptEncoder:
    """Turns prompts into fixed-length id rows for the generator, and names unknown words."""

    def __init__(self, tokenizer: Tokenizer, max_length: int = 48) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_id = tokenizer.token_to_id(PAD)
        self.unk_id = tokenizer.token_to_id(UNK)

    @property
    def vocab_size(self) -> int:
        """One past the largest id: the trainer may leave gaps, so the count of entries is not enough."""
        return max(self.tokenizer.get_vocab(with_added_tokens=True).values()) + 1

    def encode(self, prompt: str) -> list[int]:
        """Ids of `prompt`, truncated to `max_length` and right-padded with `<pad>`."""
        ids = self.tokenizer.encode(pre_tokenize(prompt), is_pretokenized=True).ids[: self.max_length]
        return ids + [self.pad_id] * (self.max_length - len(ids))

    def ignored_tail(self, prompt: str) -> str:
        """What the generator never reads of `prompt`: the tokens past `max_length`, as text ("" if it fits).

        Quoted text costs a token per character, so a long prompt with words in
        quotes can lose its last clause (a style, a background) without notice.
        """
        rest = pre_tokenize(prompt)[self.max_length :]
        words: list[str] = []
        for piece in rest:
            if piece in (QUOTE_OPEN, QUOTE_CLOSE):
                words.append('"')
            elif piece == SPACE_CHAR:
                words.append(" ")
            elif piece.startswith(CHAR_PREFIX):
                words.append(piece[len(CHAR_PREFIX) :])
            else:
                words.append(f" {piece} ")
        return " ".join("".join(words).split())

    def unknown_words(self, prompt: str) -> list[str]:
        """Words of `prompt` the vocabulary does not hold, in order, without repeats."""
        seen: list[str] = []
        for piece in pre_tokenize(prompt):
            if self.tokenizer.token_to_id(piece) is None and piece not in seen:
                seen.append(piece)
        return seen

    def missing_words(self, captions: Iterable[str]) -> list[str]:
        """`unknown_words` over many captions: in order of first use, without repeats (quoted characters and
        the quote marks are always in the vocabulary)."""
        return list(dict.fromkeys(word for text in captions for word in self.unknown_words(text)))

    def with_words(self, words: Iterable[str]) -> PromptEncoder:
        """This encoder with `words` added at new ids after the last one; every id it had stays the same.

        Why: a checkpoint fine-tuned on captions with words its vocabulary
        never held would read them as `<unk>` for good; `imgen.growth.add_prompt_words`
        gives the generator the matching embedding rows.
        """
        state = json.loads(self.tokenizer.to_str())
        vocabulary: dict[str, int] = state["model"]["vocab"]
        next_id = self.vocab_size
        for word in words:
            if word not in vocabulary:
                vocabulary[word] = next_id
                next_id += 1
        return PromptEncoder(Tokenizer.from_str(json.dumps(state)), max_length=self.max_length)

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str, max_length: int = 48) -> PromptEncoder:
        return cls(Tokenizer.from_str(text), max_length=max_length)
