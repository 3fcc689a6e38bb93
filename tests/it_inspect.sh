#!/bin/sh
# palaver inspect: the stories260K summary, JSON that parses, one-line errors with exit 1.
ref=${PALAVER_REF_DIR:-../shared/ref}
model=$ref/models/stories260K.gguf
if [ ! -f "$model" ]; then
	echo "skip: reference model not found at '$model' (set PALAVER_REF_DIR)"
	exit 77
fi
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
echo "inspect: ok"
