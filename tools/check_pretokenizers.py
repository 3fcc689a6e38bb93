#!/usr/bin/env python3
"""Differential check of palaver's pre-tokenizers against a real regex engine.

llama.cpp splits text for byte-level BPE with a list of regular expressions
applied in turn (each one cuts every piece from the previous step into its
matches and the gaps between them); engine/tokenizer.c reproduces them with
hand-written matchers.  This script draws random strings from an alphabet
of letters, digits, marks, punctuation, symbols, CJK, white space and
contractions, splits them with Python's `regex` module (non-ASCII white
space replaced by \\v first, as llama.cpp does) and with tools/pretok_split,
and reports every difference.

usage: tools/check_pretokenizers.py [N [SEED]]   (needs: pip install regex)
build the driver first:
  make && cc -Iengine -Ilib -o pretok_split tools/pretok_split.c build/libpalaver.a -lm -pthread
"""
import os
import random
import subprocess
import sys

import regex

DRIVER = os.environ.get("PRETOK_SPLIT", "./pretok_split")
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
L3 = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
Q2 = L3.replace(r"\p{N}{1,3}", r"\p{N}")
rng = [(0x0041,0x005A),(0x0061,0x007A),(0x00B5,0x00B5),(0x00C0,0x00D6),(0x00D8,0x00F6),(0x00F8,0x01BA),(0x01BC,0x01BF),(0x01C4,0x0293),(0x0295,0x02AF),(0x0370,0x0373),(0x0376,0x0377),(0x037B,0x037D),(0x037F,0x037F),(0x0386,0x0386),(0x0388,0x038A),(0x038C,0x038C),(0x038E,0x03A1),(0x03A3,0x03F5),(0x03F7,0x0481),(0x048A,0x052F),(0x0531,0x0556),(0x10A0,0x10C5),(0x13A0,0x13F5),(0x13F8,0x13FD),(0x1C90,0x1CBA),(0x1CBD,0x1CBF),(0x1D00,0x1D2B),(0x1D6B,0x1D77),(0x1D79,0x1D9A),(0x1E00,0x1F15),(0x1F18,0x1F1D),(0x1F20,0x1F45),(0x1F48,0x1F4D),(0x1F50,0x1F57),(0x1F59,0x1F59),(0x1F5B,0x1F5B),(0x1F5D,0x1F5D),(0x1F5F,0x1F7D),(0x1F80,0x1FB4),(0x1FB6,0x1FBC),(0x1FBE,0x1FBE),(0x1FC2,0x1FC4),(0x1FC6,0x1FCC),(0x1FD0,0x1FD3),(0x1FD6,0x1FDB),(0x1FE0,0x1FEC),(0x1FF2,0x1FF4),(0x1FF6,0x1FFC),(0x2102,0x2102),(0x2107,0x2107),(0x210A,0x2113),(0x2115,0x2115),(0x2119,0x211D),(0x2124,0x2124),(0x2126,0x2126),(0x2128,0x2128),(0x212A,0x212D),(0x212F,0x2134),(0x2139,0x2139),(0x213C,0x213F),(0x2145,0x2149),(0x214E,0x214E),(0x2183,0x2184),(0x2C00,0x2C7B),(0x2C7E,0x2CE4),(0x2CEB,0x2CEE),(0x2CF2,0x2CF3),(0xA640,0xA66D),(0xA680,0xA69B),(0xA722,0xA76F),(0xA771,0xA787),(0xA78B,0xA78E),(0xAB70,0xABBF),(0xFB00,0xFB06),(0xFB13,0xFB17),(0xFF21,0xFF3A),(0xFF41,0xFF5A),(0x10400,0x1044F),(0x104B0,0x104D3),(0x104D8,0x104FB),(0x10C80,0x10CB2),(0x10CC0,0x10CF2),(0x118A0,0x118DF),(0x1E900,0x1E943)]
def cls(r): return "".join("\\U%08x-\\U%08x" % (a,b) if a!=b else "\\U%08x" % a for a,b in r)
DSL = r"\s?[" + cls(rng) + r"]+"
DSP = r"\s?[" + cls([(0x21,0x2F),(0x3A,0x7E),(0xFF01,0xFF0F),(0xFF1A,0xFF5E),(0x2018,0x201F),(0x3000,0x3002)]) + r"]+"
CJK = r"[" + cls([(0x4E00,0x9FA5),(0x0800,0x4E00),(0xAC00,0xD7FF)]) + r"]+"
PRES = {
 "gpt-2": [GPT2], "llama-bpe": [L3], "qwen2": [Q2],
 "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
 "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
 "starcoder": [r"\p{N}", GPT2],
 "deepseek-coder": [r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK, r"\p{N}"],
 "deepseek-llm": [r"[\r\n]", DSL, DSP, r"\s+\Z", CJK, r"\p{N}+"],
}
ALPHA = list("abZsteldrvmSELDR'  \n\r\t0123456789!,.$+<=>^~|`-_()") + ["\n\n", "  ", "'s", "'LL", "'re",
  "é","ü","ß","Ω","π","ж","中","文","가","あ","٣","½","Ⅻ","\u0301","\u00a0","\u3000","\u2003","€","©","😀","\u200d",
  "，","！","。","“","”","‘","—","Ａ","ǅ","ʰ","ƻ","µ","\u2126","\u212a","ώ","\u0800","\u2028"]
def ref_split(text, pats):
    t2 = "".join("\x0b" if (ord(c) > 127 and c.isspace() and regex.match(r"\s", c)) else c for c in text)
    chunks = [(0, len(t2))]
    for p in pats:
        rx = regex.compile(p, regex.V0)
        out = []
        for s, e in chunks:
            pos = s
            for m in rx.finditer(t2, s, e):
                if m.start() > pos: out.append((pos, m.start()))
                if m.end() > m.start(): out.append((m.start(), m.end()))
                pos = m.end()
            if pos < e: out.append((pos, e))
        chunks = out
    ends = []
    for s, e in chunks:
        ends.append(len(text[:e].encode()))
    return ends
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
bad = 0
for pre, pats in PRES.items():
    texts = ["".join(random.choice(ALPHA) for _ in range(random.randint(1, 30))) for _ in range(N)]
    data = b"\0".join(t.encode() for t in texts) + b"\0"
    r = subprocess.run([DRIVER, pre], input=data, capture_output=True)
    got = r.stdout.decode().split("\n")
    nb = 0
    for i, t in enumerate(texts):
        exp = ref_split(t, pats)
        g = [int(x) for x in got[i].split()]
        if g != exp:
            nb += 1
            if nb <= 3:
                b = t.encode()
                def parts(ends):
                    s = 0; o = []
                    for e in ends: o.append(b[s:e].decode(errors='replace')); s = e
                    return o
                print(pre, repr(t)); print("   got", parts(g)); print("   exp", parts(exp))
    print(pre, "mismatches", nb, "/", N)
    bad += nb
sys.exit(1 if bad else 0)
