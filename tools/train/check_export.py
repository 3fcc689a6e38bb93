#!/usr/bin/python3
"""Check an exported palaver-tiny GGUF against PyTorch: same token ids, same logits.

Usage: check_export.py OUT MODEL.gguf [--checkpoint FILE] [--palaver BIN]
Tokenizes a few held-out dialogues with palaver (`palaver tokenize --special`)
and with tokenizer.py, then compares the logits of every position from
`palaver logits --all` (KV cache in F32) with the PyTorch model's.  Prints
the largest absolute difference and whether the argmax agrees everywhere.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval import load  # noqa: E402
from tokenizer import Tok  # noqa: E402


def chatml(msgs):
    return "".join("<|im_start|>%s\n%s<|im_end|>\n" % (m["role"], m["content"]) for m in msgs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("model")
    ap.add_argument("--checkpoint")
    ap.add_argument("--palaver", default="build/palaver")
    a = ap.parse_args()
    torch.set_num_threads(1)
    tok = Tok(os.path.join(a.out, "tokenizer.model"))
    m = load(a.out, a.checkpoint)
    worst, agree, n = 0.0, 0, 0
    with open(os.path.join(a.out, "heldout.jsonl"), encoding="utf-8") as f:
        dialogues = [json.loads(line)["messages"] for line in f][:6]
    for msgs in dialogues:
        text = chatml(msgs)
        ids = tok.encode(text)
        got = subprocess.run([a.palaver, "tokenize", "-m", a.model, "--ids", "--special"],
                             input=text.encode(), capture_output=True, check=True).stdout.split()
        if [int(x) for x in got] != ids:
            print("token ids differ for %r" % text[:60])
            sys.exit(1)
        with tempfile.NamedTemporaryFile(suffix=".f32") as tf:
            subprocess.run([a.palaver, "logits", "-m", a.model, "--tokens", " ".join(map(str, ids)),
                            "--all", "--kv-type", "f32", "-t", "1", "-o", tf.name], check=True)
            pl = np.fromfile(tf.name, dtype="<f4").reshape(len(ids), -1)
        with torch.no_grad():
            tl = m(torch.tensor([ids]))[0].numpy()
        worst = max(worst, float(np.abs(pl - tl).max()))
        agree += int((pl.argmax(-1) == tl.argmax(-1)).sum())
        n += len(ids)
    print("check: %d positions, max |logit difference| %.2e, argmax agrees at %d/%d"
          % (n, worst, agree, n))
    sys.exit(0 if worst < 1e-2 and agree == n else 1)


if __name__ == "__main__":
    main()
