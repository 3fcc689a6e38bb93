#!/bin/sh
# palaver inspect: the stories260K summary, JSON that parses, one-line errors with exit 1.
. "$(dirname "$0")/refdata.sh"
need_ref models/stories260K.gguf vocab/ggml-vocab-gpt-2.gguf
ref=$REF
model=$ref/models/stories260K.gguf
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$PALAVER" inspect "$model" >"$tmp/out" 2>"$tmp/err" || fail "inspect exited $?: $(cat "$tmp/err")"
grep -q '^tensors: 48$' "$tmp/out" || fail "tensor count is not 48"
grep -q '^  dim  *64  (llama.embedding_length)$' "$tmp/out" || fail "dim is not 64"
grep -q '^  layers  *5  (llama.block_count)$' "$tmp/out" || fail "layers is not 5"
grep -q '^  heads  *8  (llama.attention.head_count)$' "$tmp/out" || fail "heads is not 8"
grep -q '^  kv heads  *4  (llama.attention.head_count_kv)$' "$tmp/out" || fail "kv heads is not 4"
grep -q '^  vocab  *512 ' "$tmp/out" || fail "vocab is not 512"
grep -q '^totals: 48 tensors, 292800 parameters' "$tmp/out" || fail "totals"
grep -q 'tokenizer.ggml.tokens .*\[string x 512\] "<unk>", "<s>", "</s>", .*\.\.\.$' "$tmp/out" \
	|| fail "the token list is not summarised"
grep -Eq '^  blk.4.ffn_down.weight +F32 +172 x 64 +44032 +1082880$' "$tmp/out" \
	|| fail "tensor row for blk.4.ffn_down.weight"

"$PALAVER" inspect --json "$model" >"$tmp/json" || fail "inspect --json exited $?"
if command -v python3 >/dev/null 2>&1; then
	python3 - "$tmp/json" <<'PY' || fail "JSON check"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["tensors"]) == 48
h = d["hyperparameters"]
assert (h["embedding_length"], h["block_count"], h["attention.head_count"],
        h["attention.head_count_kv"], h["vocab_size"]) == (64, 5, 8, 4, 512), h
assert d["metadata"]["tokenizer.ggml.tokens"]["count"] == 512
assert d["totals"]["parameters"] == 292800
PY
fi

"$PALAVER" inspect --help | grep -q '^usage: palaver inspect' || fail "--help"

# bad input: one line on stderr, exit 1
check_bad() {
	"$PALAVER" inspect "$1" >/dev/null 2>"$tmp/err"; rc=$?
	[ $rc -eq 1 ] || fail "'$1': exit $rc, expected 1"
	[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "'$1': not one line: $(cat "$tmp/err")"
	grep -q "$2" "$tmp/err" || fail "'$1': '$(cat "$tmp/err")' lacks '$2'"
}
check_bad "$tmp/missing.gguf" "cannot open '$tmp/missing.gguf'"
printf 'hello, this is not a model file\n' >"$tmp/text.gguf"
check_bad "$tmp/text.gguf" "not a GGUF file"
head -c 5000 "$model" >"$tmp/cut.gguf"
check_bad "$tmp/cut.gguf" "past end of file"
"$PALAVER" inspect >/dev/null 2>&1; [ $? -eq 2 ] || fail "no argument: expected exit 2"
"$PALAVER" inspect --bogus "$model" >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad option: expected exit 2"
# mkmodel: a qwen2 model with a copied tokenizer reads back with the asked shape
vocab=$ref/vocab/ggml-vocab-gpt-2.gguf
"$PALAVER" mkmodel --arch qwen2 --dim 64 --layers 3 --heads 4 --kv-heads 2 --ffn 96 \
	--ctx 512 --type F16 --seed 7 --vocab "$vocab" "$tmp/q.gguf" 2>"$tmp/err" \
	|| fail "mkmodel exited $?: $(cat "$tmp/err")"
"$PALAVER" inspect "$tmp/q.gguf" >"$tmp/out" || fail "inspect of the mkmodel output"
grep -q '^tensors: 39$' "$tmp/out" || fail "qwen2 tensor count (3 + 3 x 12)"
grep -q '^  layers  *3  (qwen2.block_count)$' "$tmp/out" || fail "qwen2 layers"
grep -q '^  kv heads  *2  (qwen2.attention.head_count_kv)$' "$tmp/out" || fail "qwen2 kv heads"
grep -q '^  vocab  *50257 ' "$tmp/out" || fail "the vocabulary follows the copied tokenizer"
grep -q '^  tokenizer.ggml.merges ' "$tmp/out" || fail "tokenizer.ggml.merges not copied"
grep -Eq '^  blk.2.attn_k.bias +F32 +32 ' "$tmp/out" || fail "qwen2 k bias"
grep -Eq '^  blk.2.ffn_down.weight +F16 +96 x 64 ' "$tmp/out" || fail "ffn_down shape/type"
# the same seed gives the same file, another seed another one
"$PALAVER" mkmodel --arch qwen2 --dim 64 --layers 3 --heads 4 --kv-heads 2 --ffn 96 \
	--ctx 512 --type F16 --seed 7 --vocab "$vocab" "$tmp/q2.gguf" 2>/dev/null || fail "mkmodel again"
cmp -s "$tmp/q.gguf" "$tmp/q2.gguf" || fail "mkmodel is not deterministic"
"$PALAVER" mkmodel --dim 64 --heads 4 --seed 8 "$tmp/l.gguf" 2>/dev/null || fail "mkmodel llama"
"$PALAVER" mkmodel --dim 64 --heads 4 --seed 9 "$tmp/l2.gguf" 2>/dev/null || fail "mkmodel llama"
cmp -s "$tmp/l.gguf" "$tmp/l2.gguf" && fail "the seed does not change the weights"
"$PALAVER" mkmodel --dim 64 --heads 4 --tied "$tmp/t.gguf" 2>/dev/null || fail "mkmodel --tied"
"$PALAVER" inspect "$tmp/t.gguf" | grep -q '^  output.weight ' && fail "--tied kept output.weight"
"$PALAVER" mkmodel --dim 60 --heads 7 "$tmp/x.gguf" 2>/dev/null; [ $? -eq 2 ] || fail "bad heads: exit 2"
"$PALAVER" mkmodel --type Q9 "$tmp/x.gguf" 2>/dev/null; [ $? -eq 2 ] || fail "bad type: exit 2"
"$PALAVER" mkmodel --vocab "$tmp/missing.gguf" "$tmp/x.gguf" 2>"$tmp/err"; [ $? -eq 1 ] || fail "missing vocab: exit 1"
[ ! -e "$tmp/x.gguf" ] && [ ! -e "$tmp/x.gguf.tmp" ] || fail "a failed mkmodel left a file"
"$PALAVER" mkmodel --help | grep -q '^usage: palaver mkmodel' || fail "mkmodel --help"
"$PALAVER" mkmodel --arch mamba "$tmp/x.gguf" 2>"$tmp/err"; [ $? -eq 2 ] || fail "bad arch: exit 2"
grep -q "must be one of llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3, gpt-oss" "$tmp/err" || fail "bad arch: $(cat "$tmp/err")"

# every family: mkmodel writes it, inspect names its own keys, and it runs
for a in llama qwen2 qwen3 qwen3moe gemma2 gemma3 phi3 gpt-oss; do
	"$PALAVER" mkmodel --arch "$a" --dim 256 --layers 2 --heads 4 --kv-heads 2 --head-dim 128 \
		--ffn 256 --ctx 4096 --type Q4_K --vocab "$vocab" "$tmp/$a.gguf" 2>"$tmp/err" \
		|| fail "mkmodel --arch $a: $(cat "$tmp/err")"
	"$PALAVER" inspect "$tmp/$a.gguf" >"$tmp/out" || fail "inspect $a"
	grep -q "^architecture: $a\$" "$tmp/out" || fail "$a: architecture line"
	grep -q "^  family " "$tmp/out" || fail "$a: family line"
	grep -q "^  head dim     128  ($a.attention.key_length)" "$tmp/out" || fail "$a: head dim"
	printf 'Once upon a time' | "$PALAVER" -m "$tmp/$a.gguf" --no-history --chat-template none \
		-n 8 --temp 0 --ctx 512 >"$tmp/gen" 2>"$tmp/err" || fail "$a does not run: $(cat "$tmp/err")"
done
"$PALAVER" inspect "$tmp/gemma3.gguf" | grep -q '^  swa window   512  (gemma3.attention.sliding_window)' ||
	fail "gemma3: sliding window key"
"$PALAVER" inspect "$tmp/gemma2.gguf" | grep -q '^  attn cap     50  (gemma2.attn_logit_softcapping)' ||
	fail "gemma2: soft-cap key"
"$PALAVER" inspect "$tmp/phi3.gguf" | grep -q '^  blk.0.attn_qkv.weight ' || fail "phi3: fused qkv"
"$PALAVER" inspect "$tmp/phi3.gguf" | grep -q '^  blk.0.ffn_gate.weight ' && fail "phi3: a separate gate"
"$PALAVER" inspect --json "$tmp/qwen3.gguf" | grep -q '"supported": true' || fail "inspect --json supported"
"$PALAVER" inspect "$tmp/gpt-oss.gguf" >"$tmp/out"
grep -q '^  rope scaling "yarn"  (gpt-oss.rope.scaling.type)' "$tmp/out" || fail "gpt-oss: YaRN"
grep -q '^  swa window   128  (gpt-oss.attention.sliding_window)' "$tmp/out" || fail "gpt-oss: window"
grep -Eq '^  blk\.0\.ffn_down_exps\.bias +F32 +256 x 8 ' "$tmp/out" || fail "gpt-oss: 2-D expert biases in F32"
grep -Eq '^  blk\.1\.attn_sinks\.weight +F32 +4 ' "$tmp/out" || fail "gpt-oss: sinks"

# mixtures of experts: qwen3moe (8 experts by default) and llama with experts
"$PALAVER" inspect "$tmp/qwen3moe.gguf" >"$tmp/out"
grep -q '^  experts      8  (qwen3moe.expert_count)' "$tmp/out" || fail "qwen3moe: experts"
grep -q '^  experts used 2  (qwen3moe.expert_used_count)' "$tmp/out" || fail "qwen3moe: experts used"
grep -q '^  blk.1.ffn_down_exps.weight       Q6_K    256 x 256 x 8 ' "$tmp/out" ||
	fail "qwen3moe: 3-D expert tensors in the Q4_K_M mix"
grep -q '^  blk.0.ffn_gate_inp.weight        F32 ' "$tmp/out" || fail "qwen3moe: the router stays F32"
"$PALAVER" mkmodel --dim 256 --heads 4 --ffn 256 --experts 4 --experts-used 1 --type Q8_0 \
	--vocab "$vocab" "$tmp/mix.gguf" 2>"$tmp/err" || fail "mkmodel llama --experts: $(cat "$tmp/err")"
"$PALAVER" inspect "$tmp/mix.gguf" >"$tmp/out"
grep -q '^  experts used 1  (llama.expert_count)' "$tmp/out" && fail "llama: wrong key label"
grep -q '^  expert size  204.0 KiB  (one of 4 experts' "$tmp/out" || fail "llama: expert size: $(grep expert "$tmp/out")"
grep -q '^  blk.0.ffn_gate.weight ' "$tmp/out" && fail "llama with experts: a dense gate"
"$PALAVER" inspect --json "$tmp/mix.gguf" | grep -q '"expert_count": 4, "expert_used_count": 1' ||
	fail "inspect --json: experts"
printf 'Once upon a time' | "$PALAVER" -m "$tmp/mix.gguf" --no-history --chat-template none \
	-n 8 --temp 0 >"$tmp/gen" 2>"$tmp/err" || fail "llama with experts does not run: $(cat "$tmp/err")"
"$PALAVER" mkmodel --arch gemma2 --experts 4 "$tmp/x.gguf" 2>"$tmp/err"; [ $? -eq 2 ] || fail "gemma2 experts: exit 2"
grep -q "family 'gemma2' has no experts" "$tmp/err" || fail "gemma2 experts: $(cat "$tmp/err")"
"$PALAVER" mkmodel --experts 2 --experts-used 3 "$tmp/x.gguf" 2>"$tmp/err"; [ $? -eq 2 ] || fail "used > experts: exit 2"
echo "inspect: ok"
