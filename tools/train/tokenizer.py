#!/usr/bin/python3
"""Train palaver-tiny's SentencePiece BPE tokenizer on the corpus, and encode text as palaver does.

The vocabulary: <unk> 0, <s> 1, </s> 2, the chatml control tokens
<|im_start|> 3 and <|im_end|> 4, the 256 byte tokens <0x00>..<0xFF>, then
the learned pieces.  Normalisation is the identity (no NFKC, spaces kept as
written), so that palaver's llama tokenizer, which does no normalisation,
gives the same ids.  Newlines are not pieces (the trainer reads lines): they
fall back to the byte token <0x0A> in both tokenizers.

encode_chat() mirrors palaver (engine/tokenizer.c, llama.cpp's SPM rules):
the text is cut at control tokens, and each fragment at the start or after a
control token gets a space prefix; TOKENIZE_ADD_BOS puts <s> first.
"""

import json
import os
import re
import sys

import sentencepiece as spm

SPECIALS = ["<|im_start|>", "<|im_end|>"]
VOCAB = int(os.environ.get("TINY_VOCAB", "2048"))


def train(corpus_dir, prefix):
    lines = []
    with open(os.path.join(corpus_dir, "train.jsonl"), encoding="utf-8") as f:
        for line in f:
            for m in json.loads(line)["messages"]:
                lines.append(m["role"])
                lines.extend(l for l in m["content"].split("\n") if l)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=prefix, model_type="bpe",
        vocab_size=VOCAB, character_coverage=1.0, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, split_digits=True, control_symbols=SPECIALS,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
        max_sentence_length=8192, train_extremely_large_corpus=False)


class Tok:
    def __init__(self, model_path):
        self.sp = spm.SentencePieceProcessor(model_file=model_path)
        self.special = {s: self.sp.piece_to_id(s) for s in SPECIALS}
        self.bos = self.sp.bos_id()
        self.re = re.compile("(" + "|".join(re.escape(s) for s in SPECIALS) + ")")

    def encode(self, text, bos=True, special=True):
        """Ids palaver gives for text (TOKENIZE_ADD_BOS, and PARSE_SPECIAL when special)."""
        ids = [self.bos] if bos else []
        parts = self.re.split(text) if special else [text]
        for p in parts:
            if not p:
                continue
            if special and p in self.special:
                ids.append(self.special[p])
            else:
                # SentencePiece adds the dummy prefix to every call, which is
                # what palaver does for the first fragment and after specials
                ids.extend(self.sp.encode(p))
        return ids

    def decode(self, ids):
        return self.sp.decode(ids)


if __name__ == "__main__":
    corpus_dir = sys.argv[1]
    prefix = os.path.join(corpus_dir, "tokenizer")
    train(corpus_dir, prefix)
    t = Tok(prefix + ".model")
    n = 0
    with open(os.path.join(corpus_dir, "train.jsonl"), encoding="utf-8") as f:
        for line in f:
            msgs = json.loads(line)["messages"]
            n += len(t.encode("".join("<|im_start|>%s\n%s<|im_end|>\n" % (m["role"], m["content"]) for m in msgs)))
    print("tokenizer: %d pieces; training set %d tokens" % (t.sp.get_piece_size(), n))
