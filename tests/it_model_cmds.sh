#!/bin/sh
# palaver logits / bench / perplexity on the reference models: output shapes, agreement
# between --all and the last row, and one-line errors with the right exit codes.
. "$(dirname "$0")/refdata.sh"
need_ref models/stories260K.gguf
ref=$REF
m=$ref/models/stories260K.gguf
[ -n "$PALAVER" ] || { echo "PALAVER is not set"; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
# the kernel choice and the bandwidth record go here, not to the user's cache
export XDG_CACHE_HOME="$tmp/cache"
fail() { echo "FAIL: $*"; exit 1; }

# expect CODE PATTERN CMD...: exit status CODE, a single stderr line matching PATTERN
expect() {
	code=$1; pat=$2; shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
	[ "$rc" = "$code" ] || fail "$* exited $rc, expected $code: $(cat "$tmp/err")"
	grep -q -- "$pat" "$tmp/err" || fail "$*: stderr lacks '$pat': $(cat "$tmp/err")"
	[ "$(wc -l <"$tmp/err")" -le 1 ] || fail "$*: more than one error line: $(cat "$tmp/err")"
}

size() { wc -c <"$1" | tr -d ' '; }

# logits: one row of 512 floats, or five with --all; the last --all row is the one row
"$PALAVER" logits --help | grep -q "usage: palaver logits" || fail "logits --help"
"$PALAVER" logits -m "$m" --tokens "1 403 407 261 378" -o "$tmp/last.f32" -t 2 || fail "logits"
[ "$(size "$tmp/last.f32")" = 2048 ] || fail "logits wrote $(size "$tmp/last.f32") bytes"
"$PALAVER" logits -m "$m" --tokens "1,403,407,261,378" --all -t 1 >"$tmp/all.f32" || fail "logits --all"
[ "$(size "$tmp/all.f32")" = 10240 ] || fail "logits --all wrote $(size "$tmp/all.f32") bytes"
tail -c 2048 "$tmp/all.f32" >"$tmp/all_last.f32"
cmp -s "$tmp/last.f32" "$tmp/all_last.f32" || fail "last row differs between --all and default"

expect 2 "out of range" "$PALAVER" logits -m "$m" --tokens "1 512"
expect 2 "out of range" "$PALAVER" logits -m "$m" --tokens "-1"
expect 2 "not a list of token ids" "$PALAVER" logits -m "$m" --tokens "1 x"
expect 1 "nope.gguf" "$PALAVER" logits -m "$tmp/nope.gguf" --tokens "1"
expect 1 "larger than the model's" "$PALAVER" logits -m "$m" --tokens "1" --ctx 4096
# more tokens than the model's context (2048) is the caller's mistake
expect 2 "the tokens do not fit" "$PALAVER" logits -m "$m" --tokens "$(yes 1 | head -n 2100 | tr '\n' ' ')"
expect 1 "nope.gguf" "$PALAVER" logits -m "$tmp/nope.gguf" --tokens "$(yes 1 | head -n 2100 | tr '\n' ' ')"
# no model: -m '' (without -m the built-in palaver-tiny would answer)
expect 2 "required" "$PALAVER" logits -m "" --tokens "1"
expect 2 "unknown option" "$PALAVER" logits -m "$m" --tokens 1 --bogus x

# bench: JSON array with the llama-bench fields
"$PALAVER" bench --help | grep -q "usage: palaver bench" || fail "bench --help"
"$PALAVER" bench -m "$m" -p 32 -n 8 -r 2 -t 2 --format json >"$tmp/b.json" 2>"$tmp/err" ||
	fail "bench: $(cat "$tmp/err")"
head -c 1 "$tmp/b.json" | grep -q '\[' || fail "bench json is not an array"
for k in '"test": "pp32"' '"test": "tg8"' t_s_mean t_s_sd model_file model_type model_bytes \
	n_params '"threads": 2' '"backend": "cpu"' roofline_fraction; do
	grep -q "$k" "$tmp/b.json" || fail "bench json lacks $k"
done
"$PALAVER" bench -m "$m" -p 16 -n 4 -r 1 -d 8 --format csv | grep -q "^tg4 @ d8,0,4,8," ||
	fail "bench csv with depth"
"$PALAVER" bench -m "$m" -p 16 -n 4 -r 1 >"$tmp/b.md" || fail "bench md"
grep -q "| pp16 |" "$tmp/b.md" || fail "bench md"
grep -q "activations for 16-token batches" "$tmp/b.md" ||
	fail "bench md: no batch size in the memory line: $(grep 'peak RSS' "$tmp/b.md")"
# the prompt runs in chunks of the batch size, as the chat's
"$PALAVER" bench -m "$m" -p 16 -n 0 -r 1 --batch-size 4 | grep -q "activations for 4-token batches" ||
	fail "bench does not take --batch-size"
# a model whose bytes fit in the caches has no memory roofline: never "over 100%"
grep -Eq "reached ([1-9][0-9]{2,})%|\| [1-9][0-9]{2,}% \|" "$tmp/b.md" &&
	fail "bench claims a roofline of 100% or more: $(cat "$tmp/b.md")"
grep -Eq '"roofline_fraction": (1\.[0-9]*[1-9]|[2-9])' "$tmp/b.json" &&
	fail "bench json has a roofline fraction above 1"
expect 1 "larger than the model's" "$PALAVER" bench -m "$m" -p 4096 -n 0 -r 1

# the bandwidth record: one line per probe, the roofline's figure the best of
# the last 16 at the run's thread count; another CPU's record or a line that
# is not a probe's counts for nothing
rec=$(ls "$tmp"/cache/palaver/bandwidth-*.txt 2>/dev/null | head -n 1)
[ -f "$rec" ] || fail "bench wrote no bandwidth record under $tmp/cache/palaver"
grep -q '^palaver-bandwidth 1$' "$rec" || fail "bandwidth record: no magic line: $(cat "$rec")"
cpu=$(grep '^cpu ' "$rec")
[ -n "$cpu" ] || fail "bandwidth record: no cpu line"
[ "$(grep -c '^2 [0-9]* [0-9]*$' "$rec")" -ge 3 ] ||
	fail "bandwidth record: fewer than 3 probes at 2 threads: $(cat "$rec")"
bench_json() { # the bench JSON's field $1 (the first test's)
	"$PALAVER" bench -m "$m" -p 0 -n 2 -r 1 -t 2 --format json >"$tmp/bw.json" 2>"$tmp/err" ||
		fail "bench: $(cat "$tmp/err")"
	sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$tmp/bw.json" | head -n 1
}
{
	printf 'palaver-bandwidth 1\n%s\n' "$cpu"
	echo "2 40000000000000 100" # the biggest at 2 threads, but 17 probes ago
	i=0
	while [ $i -lt 15 ]; do echo "2 1000 $((200 + i))"; i=$((i + 1)); done
	echo "2 30000000000000 300"   # the best of the last 16 with this run's
	echo "1 50000000000000 301"   # another thread count
	echo "2 900000000000000 302"  # above 100 TB/s: no probe's
	echo "2 nan 303"
	echo "2 20000000000000 304 extra"
	echo "two 20000000000000 305"
} >"$rec"
[ "$(bench_json bandwidth_bytes_s)" = 30000000000000 ] ||
	fail "bandwidth: not the best of the last 16 probes: $(cat "$tmp/bw.json")"
[ "$(bench_json bandwidth_probes)" = 16 ] || fail "bandwidth: not 16 probes: $(cat "$tmp/bw.json")"
run=$(bench_json bandwidth_run_bytes_s)
[ "$(tail -n 1 "$rec" | cut -d' ' -f2)" = "$run" ] ||
	fail "bandwidth record: the last line is not this run's $run: $(tail -n 2 "$rec")"
[ "$(wc -l <"$rec")" -le 40 ] || fail "bandwidth record: $(wc -l <"$rec") lines"
"$PALAVER" bench -m "$m" -p 0 -n 2 -r 1 -t 2 >"$tmp/b.md" || fail "bench md"
grep -q "memory read bandwidth: 30000.0 GB/s (2 threads; the best of this CPU's last 16 probes, this run's" "$tmp/b.md" ||
	fail "bench md: $(grep bandwidth "$tmp/b.md")"
# another CPU's record: this run's probe alone, and the file is this CPU's again
printf 'palaver-bandwidth 1\ncpu another cpu\n2 30000000000000 300\n' >"$rec"
[ "$(bench_json bandwidth_probes)" = 1 ] || fail "bandwidth: another CPU's record counted"
[ "$(bench_json bandwidth_bytes_s)" != 30000000000000 ] || fail "bandwidth: another CPU's figure"
grep -qx "$cpu" "$rec" || fail "bandwidth record not rewritten for this CPU: $(cat "$rec")"
# no place to write it: a warning, the run's own figure, exit 0
XDG_CACHE_HOME="$tmp/b.md" "$PALAVER" bench -m "$m" -p 0 -n 2 -r 1 -t 2 --format csv \
	>"$tmp/out" 2>"$tmp/err" || fail "bench with no writable cache: $(cat "$tmp/err")"
grep -q "warning: bench: cannot" "$tmp/err" || fail "no warning for an unwritable record: $(cat "$tmp/err")"
grep -q '^tg2,.*,1$' "$tmp/out" || fail "bench csv: not one probe: $(cat "$tmp/out")"
expect 2 "md, json or csv" "$PALAVER" bench -m "$m" --format xml

# perplexity: windows of 64 over a repeated story; too short a text is a usage error
i=0
while [ $i -lt 40 ]; do
	echo "Once upon a time, there was a little girl named Lily. She loved to play outside."
	i=$((i + 1))
done >"$tmp/story.txt"
"$PALAVER" perplexity --help | grep -q "usage: palaver perplexity" || fail "perplexity --help"
"$PALAVER" perplexity -m "$m" -f "$tmp/story.txt" --ctx 64 -t 2 >"$tmp/ppl" 2>"$tmp/err" ||
	fail "perplexity: $(cat "$tmp/err")"
grep -q '^\[1\][0-9.]*,\[2\]' "$tmp/ppl" || fail "no running values: $(cat "$tmp/ppl")"
ppl=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\) .*/\1/p' "$tmp/ppl")
[ -n "$ppl" ] || fail "no final estimate: $(cat "$tmp/ppl")"
# a repeated story is easy: far below the 512-token vocabulary's uniform perplexity
awk -v p="$ppl" 'BEGIN { exit !(p > 1 && p < 20) }' || fail "implausible perplexity $ppl"
echo "Once upon a time" >"$tmp/short.txt"
expect 2 "fewer than one window" "$PALAVER" perplexity -m "$m" -f "$tmp/short.txt" --ctx 64
expect 1 "cannot read" "$PALAVER" perplexity -m "$m" -f "$tmp/none.txt"
echo "ok"
