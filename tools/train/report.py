#!/usr/bin/python3
"""Markdown tables for docs/MODEL.md from eval.py's JSON (held-out help questions and words).

Usage: report.py EVAL.json [JUDGED.tsv]
JUDGED.tsv (optional): word, y/n per line: the reader's judgement whether the
answer is recognisably a definition of the word; without it that column is
left out.
"""

import json
import sys


def cell(s):
    return s.replace("|", "\\|").replace("\n", " ")


def main():
    res = json.load(open(sys.argv[1], encoding="utf-8"))
    judged = {}
    if len(sys.argv) > 2:
        for line in open(sys.argv[2], encoding="utf-8"):
            w, v = line.rstrip("\n").split("\t")[:2]
            judged[w] = v == "y"
    ok = sum(h["ok"] for h in res["help"])
    print("### Held-out help questions: %d/%d right\n" % (ok, len(res["help"])))
    print("| # | question | expected | greedy answer | right |")
    print("|---|---|---|---|---|")
    for i, h in enumerate(res["help"], 1):
        print("| %d | %s | %s | %s | %s |" % (i, cell(h["q"]), cell(h["expect"].replace("|", ", ")),
                                             cell(h["a"]), "yes" if h["ok"] else "no"))
    for kind, title in (("trained", "WordNet words of the training set, asked with unseen phrasings"),
                        ("unseen", "WordNet words held out of training entirely")):
        ws = [w for w in res["words"] if w.get("kind", "unseen") == kind]
        if not ws:
            continue
        ov = sum(w["overlap"] for w in ws)
        jd = sum(judged.get(w["word"], False) for w in ws)
        print("\n### %s: %d/%d share a content word with the gloss%s\n"
              % (title, ov, len(ws), "; %d/%d judged a recognisable definition" % (jd, len(ws)) if judged else ""))
        print("| # | question | WordNet gloss | greedy answer | overlap |%s" % (" definition |" if judged else ""))
        print("|---|---|---|---|---|%s" % ("---|" if judged else ""))
        for i, w in enumerate(ws, 1):
            print("| %d | %s | %s | %s | %s |%s" % (i, cell(w.get("q", w["word"])), cell(w["gloss"]), cell(w["a"]),
                                                 "yes" if w["overlap"] else "no",
                                                 (" %s |" % ("yes" if judged.get(w["word"]) else "no")) if judged else ""))

if __name__ == "__main__":
    main()
