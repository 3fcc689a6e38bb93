#!/bin/sh
# palaver tokenize: llama.cpp's tokenizer test vectors for every reference
# vocabulary, byte-exact input, the acceptance example, and one-line errors.
: "${PALAVER:?set PALAVER to the palaver binary}"
. "$(dirname "$0")/refdata.sh"
need_ref vocab
ref=$REF
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# Each .inp holds strings each followed by the line __ggml_vocab_test__
# (so "\n__ggml_vocab_test__\n" separates them; a string may be empty or
# end in spaces and newlines); the .out holds one line of ids per string.
for inp in "$ref"/vocab/*.gguf.inp; do
	gguf=${inp%.inp}
	name=$(basename "$gguf" .gguf)
	rm -f "$tmp"/case.*
	LC_ALL=C awk -v dir="$tmp" 'BEGIN { RS = "\n__ggml_vocab_test__\n" }
		{ f = sprintf("%s/case.%03d", dir, NR); printf "%s", $0 > f; close(f) }' "$inp"
	n=0; ok=0
	while IFS= read -r want; do
		n=$((n + 1))
		f=$(printf '%s/case.%03d' "$tmp" "$n")
		[ -e "$f" ] || : >"$f" # an empty string
		got=$("$PALAVER" tokenize -m "$gguf" --ids --no-bos -f "$f") || { bad "$name case $n: exit $?"; continue; }
		want=$(echo $want)
		if [ "$got" = "$want" ]; then ok=$((ok + 1)); else bad "$name case $n: got '$got', want '$want'"; fi
	done <"$gguf.out"
	[ "$n" -eq 46 ] || bad "$name: $n cases, want 46"
	echo "$name: $ok/$n"
done

stories=$ref/models/stories260K.gguf
got=$("$PALAVER" tokenize -m "$stories" --ids "Once upon a time")
[ "$got" = "1 403 407 261 378" ] || bad "stories260K: '$got'"
got=$("$PALAVER" tokenize -m "$stories" "Once upon a time" | head -2 | tr -s ' ')
[ "$got" = " 1 -> '<s>'
 403 -> ' Once'" ] || bad "pieces: '$got'"

# stdin and -f are read byte for byte: the trailing newline is a token
a=$(printf 'Hello\n' | "$PALAVER" tokenize -m "$stories" --ids)
b=$(printf 'Hello' | "$PALAVER" tokenize -m "$stories" --ids)
[ "$a" != "$b" ] && [ "${a#"$b"}" != "$a" ] || bad "stdin trimmed: '$a' vs '$b'"
printf 'Hello\n' >"$tmp/hello"
c=$("$PALAVER" tokenize -m "$stories" --ids -f "$tmp/hello")
[ "$a" = "$c" ] || bad "-f differs from stdin: '$c' vs '$a'"

# control tokens: text unless --special
a=$("$PALAVER" tokenize -m "$stories" --ids --no-bos "</s>")
b=$("$PALAVER" tokenize -m "$stories" --ids --no-bos --special "</s>")
[ "$b" = "2" ] && [ "$a" != "2" ] || bad "--special: '$a' / '$b'"

# errors: one line on stderr, exit 1 (runtime) or 2 (usage)
"$PALAVER" tokenize -m "$tmp/missing.gguf" x >"$tmp/out" 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ ! -s "$tmp/out" ] || bad "missing file: rc $rc, $(cat "$tmp/err")"
if "$PALAVER" mkmodel --vocab 64 --dim 64 --layers 1 "$tmp/novocab.gguf" >/dev/null 2>&1; then
	"$PALAVER" tokenize -m "$tmp/novocab.gguf" x >"$tmp/out" 2>"$tmp/err"; rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "no tokenizer" "$tmp/err" ||
		bad "file without tokenizer: rc $rc, $(cat "$tmp/err")"
fi
"$PALAVER" tokenize -m "$stories" --bogus x >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || bad "unknown option: rc $rc"
"$PALAVER" tokenize --help | grep -q "^usage: palaver tokenize" || bad "--help"

[ $fail -eq 0 ] || { echo "it_tokenize: $fail failures"; exit 1; }
echo "it_tokenize: ok"
