#!/usr/bin/python3
"""Dump palaver-tiny (weights, tokenizer, metadata) to a raw file that tiny_gguf turns into GGUF.

Usage: export.py OUT [--checkpoint FILE] [--vocab-only] -o RAW
The raw format (little-endian; read by tools/train/tiny_gguf.c):
  "PTNY" u32 version=1, then records, each a u8 kind and a key/name
  (u32 length + bytes), ending with kind 0:
    1 string   u32 length + bytes        2 u32   u32
    3 f32      f32                       4 bool  u8
    5 strings  u64 n, n x (u32 length + bytes)
    6 f32s     u64 n, n x f32            7 i32s  u64 n, n x i32
    8 tensor   u32 n_dims, n_dims x i64 ne (innermost first), u32 ggml type
               (0 = F32), u64 bytes, the data
Weights are written in GGUF's layout: a torch Linear weight (out, in) is
ne = (in, out) with no transposition; q and k need no permutation because
model.py rotates interleaved pairs as llama GGUF files do.
"""

import argparse
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer import Tok  # noqa: E402

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")


class Raw:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(b"PTNY" + struct.pack("<I", 1))

    def _key(self, kind, key):
        k = key.encode()
        self.f.write(struct.pack("<BI", kind, len(k)) + k)

    def _s(self, s):
        b = s.encode() if isinstance(s, str) else s
        self.f.write(struct.pack("<I", len(b)) + b)

    def string(self, key, s):
        self._key(1, key)
        self._s(s)

    def u32(self, key, v):
        self._key(2, key)
        self.f.write(struct.pack("<I", v))

    def f32(self, key, v):
        self._key(3, key)
        self.f.write(struct.pack("<f", v))

    def bool(self, key, v):
        self._key(4, key)
        self.f.write(struct.pack("<B", 1 if v else 0))

    def strings(self, key, xs):
        self._key(5, key)
        self.f.write(struct.pack("<Q", len(xs)))
        for x in xs:
            self._s(x)

    def f32s(self, key, xs):
        self._key(6, key)
        self.f.write(struct.pack("<Q", len(xs)) + np.asarray(xs, dtype="<f4").tobytes())

    def i32s(self, key, xs):
        self._key(7, key)
        self.f.write(struct.pack("<Q", len(xs)) + np.asarray(xs, dtype="<i4").tobytes())

    def tensor(self, name, arr):
        a = np.ascontiguousarray(arr, dtype="<f4")
        self._key(8, name)
        ne = list(reversed(a.shape))
        self.f.write(struct.pack("<I", len(ne)) + struct.pack("<%dq" % len(ne), *ne))
        data = a.tobytes()
        self.f.write(struct.pack("<IQ", 0, len(data)) + data)

    def close(self):
        self.f.write(b"\0")
        self.f.close()


def write_tokenizer(raw, tok):
    sp = tok.sp
    n = sp.get_piece_size()
    types = []
    for i in range(n):
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    raw.string("tokenizer.ggml.model", "llama")
    raw.strings("tokenizer.ggml.tokens", [sp.id_to_piece(i) for i in range(n)])
    raw.f32s("tokenizer.ggml.scores", [sp.get_score(i) for i in range(n)])
    raw.i32s("tokenizer.ggml.token_type", types)
    raw.u32("tokenizer.ggml.bos_token_id", sp.bos_id())
    raw.u32("tokenizer.ggml.eos_token_id", sp.piece_to_id("<|im_end|>"))
    raw.u32("tokenizer.ggml.eot_token_id", sp.piece_to_id("<|im_end|>"))
    raw.u32("tokenizer.ggml.unknown_token_id", sp.unk_id())
    raw.bool("tokenizer.ggml.add_bos_token", True)
    raw.bool("tokenizer.ggml.add_eos_token", False)
    raw.bool("tokenizer.ggml.add_space_prefix", True)
    raw.string("tokenizer.chat_template", CHATML)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--checkpoint")
    ap.add_argument("--vocab-only", action="store_true")
    ap.add_argument("--batch", type=int, default=4, help="batch size, for old checkpoints")
    ap.add_argument("--sources", default="the build", help="the commit the corpus came from")
    ap.add_argument("-o", dest="raw", required=True)
    a = ap.parse_args()
    tok = Tok(os.path.join(a.out, "tokenizer.model"))
    raw = Raw(a.raw)
    raw.string("general.architecture", "llama")
    raw.string("general.name", "palaver-tiny")
    if not a.vocab_only:
        import torch
        st = torch.load(a.checkpoint or os.path.join(a.out, "final.pt"))
        c, w = st["config"], st["model"]
        steps = st.get("steps", st.get("step"))
        tr = st.get("train", {"batch": a.batch, "lr": 3e-3, "warmup": 20})
        raw.string("general.description",
                   "palaver-tiny: a small chat model trained by the palaver project. It answers "
                   "questions about palaver (options, commands, chat commands, config keys) and "
                   "gives WordNet definitions of common English words; it is not a general "
                   "assistant.")
        raw.string("general.source",
                   "corpus: tools/train/corpus.py from man/palaver.1, ui/slash.c, 'palaver "
                   "sessions --help', config.yaml, WordNet 3.0 (Debian wordnet-base; licence in "
                   "models/LICENSE.WordNet) and hand-written small talk, sources as of %s; "
                   "tokenizer: "
                   "SentencePiece BPE, %d pieces; model: llama, dim %d, %d layers, %d heads, %d kv "
                   "heads, ffn %d, ctx %d, tied output, F32; training: tools/train/train.py on "
                   "the CPU, AdamW lr %g (warmup %d, cosine to 10%%), %d steps of %d x %d tokens, "
                   "seed 1234"
                   % (a.sources, c["vocab"], c["dim"], c["layers"], c["heads"], c["kv_heads"],
                      c["ffn"], c["ctx"], tr["lr"], tr["warmup"], steps, tr["batch"], c["ctx"]))
        raw.string("general.license", "palaver's licence (the model); WordNet 3.0 licence (glosses)")
        raw.u32("general.file_type", 0)
        raw.u32("llama.context_length", c["ctx"])
        raw.u32("llama.embedding_length", c["dim"])
        raw.u32("llama.block_count", c["layers"])
        raw.u32("llama.feed_forward_length", c["ffn"])
        raw.u32("llama.attention.head_count", c["heads"])
        raw.u32("llama.attention.head_count_kv", c["kv_heads"])
        raw.u32("llama.rope.dimension_count", c["dim"] // c["heads"])
        raw.f32("llama.rope.freq_base", c["rope_base"])
        raw.f32("llama.attention.layer_norm_rms_epsilon", c["eps"])
        raw.u32("llama.vocab_size", c["vocab"])
    write_tokenizer(raw, tok)
    if not a.vocab_only:
        g = lambda k: w[k].float().numpy()  # noqa: E731
        raw.tensor("token_embd.weight", g("embed.weight"))
        for i in range(c["layers"]):
            p = "blocks.%d." % i
            b = "blk.%d." % i
            raw.tensor(b + "attn_norm.weight", g(p + "attn_norm.weight"))
            raw.tensor(b + "attn_q.weight", g(p + "wq.weight"))
            raw.tensor(b + "attn_k.weight", g(p + "wk.weight"))
            raw.tensor(b + "attn_v.weight", g(p + "wv.weight"))
            raw.tensor(b + "attn_output.weight", g(p + "wo.weight"))
            raw.tensor(b + "ffn_norm.weight", g(p + "ffn_norm.weight"))
            raw.tensor(b + "ffn_gate.weight", g(p + "gate.weight"))
            raw.tensor(b + "ffn_up.weight", g(p + "up.weight"))
            raw.tensor(b + "ffn_down.weight", g(p + "down.weight"))
        raw.tensor("output_norm.weight", g("norm.weight"))
    raw.close()


if __name__ == "__main__":
    main()
