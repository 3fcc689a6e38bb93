#!/usr/bin/python3
"""Evaluate palaver-tiny in PyTorch: held-out perplexity as `palaver perplexity` computes it,
greedy answers to the held-out questions, and the checks of docs/MODEL.md.

Usage: eval.py OUT [--checkpoint FILE] [--ctx N] [--json FILE]
Perplexity: heldout_plain.txt is tokenized as palaver does (<s> first, no
control tokens parsed), cut into windows of ctx tokens; each window starts
from an empty context with its first token replaced by <s>, and tokens
ctx/2+1 .. ctx-1 are scored (app/cmd_perplexity.c, llama.cpp's method).
Greedy answers: the question in chatml with the generation prompt, argmax
until <|im_end|> or <|im_start|> (palaver's chatml stops) or
120 tokens.  A help answer is right when it names one of
the expected options/keys/commands; a word answer counts as a definition
when it shares a content word with the WordNet gloss (a rough automatic
proxy; docs/MODEL.md also gives a judgement by reading).
"""

import argparse
import json
import math
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, Tiny  # noqa: E402
from tokenizer import Tok  # noqa: E402

STOP = set("a an the of or and to in on for with by as at be is are was that this which from "
           "into not no something someone its it any one who what".split())


def load(out, checkpoint):
    st = torch.load(checkpoint or os.path.join(out, "final.pt"))
    m = Tiny(Config(**st["config"]))
    m.load_state_dict(st["model"])
    m.eval()
    return m


@torch.no_grad()
def perplexity(m, tok, path, ctx):
    with open(path, encoding="utf-8") as f:
        ids = tok.encode(f.read(), bos=True, special=False)
    nll, count = 0.0, 0
    for c in range(len(ids) // ctx):
        w = list(ids[c * ctx:(c + 1) * ctx])
        w[0] = tok.bos
        logp = torch.log_softmax(m(torch.tensor([w]))[0].double(), dim=-1)
        for j in range(ctx // 2, ctx - 1):
            nll -= logp[j, w[j + 1]].item()
            count += 1
    return math.exp(nll / count), len(ids), count


@torch.no_grad()
def greedy(m, tok, question, max_new=120):
    ids = tok.encode("<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n" % question)
    # palaver's chatml stops: <|im_end|> (eos, eot) and <|im_start|>
    stops = {tok.special["<|im_end|>"], tok.special["<|im_start|>"], tok.sp.eos_id()}
    out = []
    for _ in range(max_new):
        x = torch.tensor([(ids + out)[-m.cfg.ctx:]])
        nxt = int(m(x)[0, -1].argmax())
        if nxt in stops:
            break
        out.append(nxt)
    return tok.decode(out).strip()


def names_right(answer, expect):
    for e in expect:
        if re.search(r'(?<![\w-])' + re.escape(e) + r'(?![\w-])', answer):
            return True
    return False


def content_words(s, word):
    ws = set(re.findall(r"[a-z]+", s.lower())) - STOP
    ws.discard(word)
    return {w for w in ws if len(w) > 2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--checkpoint")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--json")
    ap.add_argument("--ask", action="append", default=[])
    ap.add_argument("--ppl-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tok = Tok(os.path.join(a.out, "tokenizer.model"))
    m = load(a.out, a.checkpoint)
    if a.ask:
        for q in a.ask:
            print("Q: %s\nA: %s" % (q, greedy(m, tok, q)))
        return
    ppl, n_tok, n_scored = perplexity(m, tok, os.path.join(a.out, "heldout_plain.txt"), a.ctx)
    print("held-out perplexity %.4f (%d tokens, %d scored, windows of %d)" % (ppl, n_tok, n_scored, a.ctx))
    if a.ppl_only:
        return
    res = {"perplexity": ppl, "tokens": n_tok, "scored": n_scored, "ctx": a.ctx, "help": [], "words": []}
    right = 0
    with open(os.path.join(a.out, "heldout_help.tsv"), encoding="utf-8") as f:
        for line in f:
            q, exp, _ = line.rstrip("\n").split("\t")
            ans = greedy(m, tok, q)
            ok = names_right(ans, exp.split("|"))
            right += ok
            res["help"].append({"q": q, "expect": exp, "a": ans, "ok": ok})
            print("[%s] %s\n    -> %s" % ("ok" if ok else "--", q, ans))
    print("help: %d/%d name the right command, key or config key" % (right, len(res["help"])))
    good = {"trained": 0, "unseen": 0}
    with open(os.path.join(a.out, "heldout_words.tsv"), encoding="utf-8") as f:
        for line in f:
            kind, q, w, pos, gloss = line.rstrip("\n").split("\t")
            ans = greedy(m, tok, q)
            body = ans.split(":", 1)[1] if ":" in ans else ans
            ok = bool(content_words(body, w) & content_words(gloss, w))
            good[kind] += ok
            res["words"].append({"kind": kind, "q": q, "word": w, "gloss": gloss, "a": ans, "overlap": ok})
            print("[%s] %s %s (%s)\n    -> %s" % ("ov" if ok else "--", kind, q, gloss, ans))
    for kind in ("trained", "unseen"):
        n = sum(1 for r in res["words"] if r["kind"] == kind)
        print("words (%s): %d/%d share a content word with the gloss" % (kind, good[kind], n))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
