#!/usr/bin/env python3
"""The reference renderer for tests/it_jinja_conformance.sh: Jinja2 set up
as Hugging Face transformers renders chat templates.

usage: oracle.py OUTDIR MODEL.gguf CONVERSATIONS_DIR TEMPLATE...

A TEMPLATE is a .jinja file (rendered with MODEL's BOS and EOS texts) or a
.gguf file (its own tokenizer.chat_template, BOS and EOS).  Every template
is rendered for every conversation (*.json: a list of messages, or an
object with "messages" and other template variables), with and without
the generation prompt, into OUTDIR/NAME.CONV.gen1 (or .gen0); a render
that raises writes NAME.CONV.gen1.err instead.  OUTDIR/cases lists one
case per line: NAME CONV GEN TEMPLATE MODEL.

strftime_now() reports $SOURCE_DATE_EPOCH, as palaver does, so that both
sides print the same date.
"""
import json
import os
import struct
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    """transformers' {% generation %} block: renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_render", [])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = datetime.fromtimestamp(int(epoch)) if epoch else datetime.now()
    return now.strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# ---- just enough of GGUF to read the tokenizer's texts and the template ----

def gguf_metadata(path, wanted):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8", errors="surrogateescape")
        pos += n
        return s

    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
             10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in sizes:
            return take(sizes[t])
        if t == 8:
            return string()
        if t == 9:
            et = take("I")
            n = take("Q")
            return [value(et) for _ in range(n)]
        raise ValueError(f"{path}: unknown GGUF type {t}")

    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    pos = 4
    take("I")  # version
    take("Q")  # tensors
    n_kv = take("Q")
    out = {}
    for _ in range(n_kv):
        key = string()
        t = take("I")
        if key == "tokenizer.ggml.tokens" or key in wanted:
            out[key] = value(t)
        else:
            value(t)
    return out


def special_texts(path):
    md = gguf_metadata(path, {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                              "tokenizer.chat_template"})
    toks = md.get("tokenizer.ggml.tokens", [])
    texts = {}
    for name in ("bos", "eos"):
        i = md.get(f"tokenizer.ggml.{name}_token_id")
        if i is not None and 0 <= i < len(toks):
            texts[f"{name}_token"] = toks[i]
    return texts, md.get("tokenizer.chat_template")


def main():
    outdir, model, convdir = sys.argv[1:4]
    templates = sys.argv[4:]
    env = environment()
    model_texts, _ = special_texts(model)
    convs = sorted(c for c in os.listdir(convdir) if c.endswith(".json"))
    cases = []
    for tpath in templates:
        base = os.path.basename(tpath)
        if tpath.endswith(".gguf"):
            texts, source = special_texts(tpath)
            if source is None:
                continue
            name = "gguf-" + base[:-5]
            tmodel = tpath
        else:
            texts = model_texts
            with open(tpath, encoding="utf-8") as f:
                source = f.read()
            name = base[:-6] if base.endswith(".jinja") else base
            tmodel = model
        try:
            template = env.from_string(source)
        except jinja2.TemplateError as e:
            print(f"oracle: {tpath}: {e}", file=sys.stderr)
            sys.exit(1)
        for conv in convs:
            with open(os.path.join(convdir, conv), encoding="utf-8") as f:
                c = json.load(f)
            variables = dict(c) if isinstance(c, dict) else {"messages": c}
            variables.setdefault("tools", None)
            variables.setdefault("documents", None)
            for k, v in texts.items():
                variables.setdefault(k, v)
            for gen in (1, 0):
                variables["add_generation_prompt"] = bool(gen)
                out = os.path.join(outdir, f"{name}.{conv[:-5]}.gen{gen}")
                try:
                    text = template.render(**variables)
                    with open(out, "w", encoding="utf-8", newline="") as f:
                        f.write(text)
                except Exception as e:  # a render that fails must fail in palaver too
                    with open(out + ".err", "w", encoding="utf-8") as f:
                        f.write(f"{type(e).__name__}: {e}\n")
                cases.append(f"{name} {conv[:-5]} {gen} {tpath} {tmodel}")
    with open(os.path.join(outdir, "cases"), "w", encoding="utf-8") as f:
        f.write("\n".join(cases) + "\n")


if __name__ == "__main__":
    main()
