#!/usr/bin/python3
"""Train palaver-tiny on the CPU: packed chatml dialogues, AdamW, cosine schedule, resumable.

Usage: train.py OUT [--steps N] [--bench N]
OUT holds the corpus (corpus.py) and tokenizer (tokenizer.py); the training
writes OUT/ckpt.pt every --save-every steps (model, optimiser, step, RNG
states) and resumes from it when present, appends to OUT/train.log, and at
the end writes OUT/final.pt.  The seed is fixed: the same corpus, settings
and thread count give the same model.  --bench N runs N steps and prints the
speed without saving anything (to choose the step count).

Batches: every dialogue is rendered in chatml, tokenized as palaver does
(<s> first), the dialogues of an epoch are shuffled and concatenated, and
the stream is cut into sequences of ctx+1 tokens.  The loss is over the
assistant's answers only (its words and the <|im_end|> that ends them): the
questions are context, not something to learn to write.  eval.py measures
the held-out perplexity over every token, as `palaver perplexity` does.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, Tiny  # noqa: E402
from tokenizer import Tok  # noqa: E402

SEED = 1234
HYPER = dict(dim=256, layers=6, heads=8, kv_heads=4, ffn=768, ctx=256)


def chatml(msgs):
    return "".join("<|im_start|>%s\n%s<|im_end|>\n" % (m["role"], m["content"]) for m in msgs)


def answer_mask(ids, tok):
    """1 for the tokens the loss is taken on: the assistant's words and its <|im_end|>."""
    start, end = tok.special["<|im_start|>"], tok.special["<|im_end|>"]
    nl = tok.sp.piece_to_id("<0x0A>")
    mask, i = [0] * len(ids), 0
    while i < len(ids):
        if ids[i] != start:
            i += 1
            continue
        j = i + 1                       # the role, up to and including the newline
        while j < len(ids) and ids[j] != nl:
            j += 1
        role = tok.decode(ids[i + 1: j + 1]).strip()
        k = j + 1
        while k < len(ids) and ids[k] != end:
            k += 1
        if role == "assistant":
            for t in range(j + 1, min(k + 1, len(ids))):
                mask[t] = 1
        i = k
    return mask


def load_dialogues(path, tok):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            ids = tok.encode(chatml(json.loads(line)["messages"]))
            out.append((ids, answer_mask(ids, tok)))
    return out


def epoch_batches(dialogues, seq, epoch):
    """(sequences, targets): targets are -100 (no loss) outside the answers."""
    rng = random.Random(SEED + epoch)
    order = list(range(len(dialogues)))
    rng.shuffle(order)
    stream, mask = [], []
    for i in order:
        stream.extend(dialogues[i][0])
        mask.extend(dialogues[i][1])
    n = len(stream) // (seq + 1)
    x = torch.tensor(stream[: n * (seq + 1)], dtype=torch.long).view(n, seq + 1)
    m = torch.tensor(mask[: n * (seq + 1)], dtype=torch.bool).view(n, seq + 1)
    return x, torch.where(m, x, torch.full_like(x, -100))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--bench", type=int, default=0)
    ap.add_argument("--dim", type=int, default=HYPER["dim"])
    ap.add_argument("--layers", type=int, default=HYPER["layers"])
    ap.add_argument("--ffn", type=int, default=HYPER["ffn"])
    ap.add_argument("--ctx", type=int, default=HYPER["ctx"])
    a = ap.parse_args()

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(SEED)
    tok = Tok(os.path.join(a.out, "tokenizer.model"))
    cfg = Config(vocab=tok.sp.get_piece_size(), dim=a.dim, layers=a.layers, heads=HYPER["heads"],
                 kv_heads=HYPER["kv_heads"], ffn=a.ffn, ctx=a.ctx)
    model = Tiny(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    dialogues = load_dialogues(os.path.join(a.out, "train.jsonl"), tok)
    n_params = sum(p.numel() for p in model.parameters())

    step, epoch, pos = 0, 0, 0
    ckpt = os.path.join(a.out, "ckpt.pt")
    if os.path.exists(ckpt) and not a.bench:
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, epoch, pos = st["step"], st["epoch"], st["pos"]
        torch.set_rng_state(st["rng"])
        print("train: resumed at step %d" % step, flush=True)
    data, targets = epoch_batches(dialogues, cfg.ctx, epoch)
    print("train: %d parameters, %d dialogues, %d sequences of %d per epoch, %d steps"
          % (n_params, len(dialogues), data.shape[0], cfg.ctx, a.steps), flush=True)
    log = None if a.bench else open(os.path.join(a.out, "train.log"), "a")
    total = a.bench or a.steps
    t0 = time.time()
    model.train()
    while step < total:
        if pos + a.batch > data.shape[0]:
            epoch, pos = epoch + 1, 0
            data, targets = epoch_batches(dialogues, cfg.ctx, epoch)
        xy = data[pos: pos + a.batch]
        ty = targets[pos: pos + a.batch]
        pos += a.batch
        lr = a.lr * min(1.0, (step + 1) / a.warmup)
        if step >= a.warmup:
            lr = a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - a.warmup) / max(1, a.steps - a.warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(xy[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), ty[:, 1:].reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0 or step == total:
            el = time.time() - t0
            msg = "step %d epoch %d loss %.4f lr %.2e %.2f s/step" % (step, epoch, loss.item(), lr, el / (step if a.bench else 10))
            print(msg, flush=True)
            if log:
                log.write(msg + "\n")
                log.flush()
            if not a.bench:
                t0 = time.time()
        if not a.bench and (step % a.save_every == 0 or step == total):
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "epoch": epoch, "pos": pos, "rng": torch.get_rng_state(),
                        "config": cfg.as_dict()}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
    if not a.bench:
        torch.save({"model": model.state_dict(), "config": cfg.as_dict(), "steps": step,
                    "train": {"batch": a.batch, "lr": a.lr, "warmup": a.warmup}},
                   os.path.join(a.out, "final.pt"))


if __name__ == "__main__":
    main()
