#!/bin/sh
# Batch mode: exact bytes against llama.cpp, splitting, JSON, determinism, exit codes, SIGINT, history.
P=${PALAVER:-./palaver}
. "$(dirname "$0")/refdata.sh"
need_ref models/stories260K.gguf cases/stories260K-once.json
M=$REF/models/stories260K.gguf
CASE=$REF/cases/stories260K-once.json
T=$(mktemp -d /tmp/palaver-it-batch.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
# no user config, no default history file outside the scratch directory
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data" XDG_STATE_HOME="$T/state" XDG_CACHE_HOME="$T/cache"
unset PALAVER_MODEL PALAVER_HISTORY_PATH PALAVER_CONTEXT_OVERFLOW PALAVER_SEED
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# run STATUS INPUT CMD...: stdin from the file INPUT; stdout in $T/out, stderr in $T/err
run() {
	want=$1 in=$2; shift 2
	"$@" <"$in" >"$T/out" 2>"$T/err"; got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, wanted $want: $(head -c 600 "$T/err")"
}
has() { grep -q -F -- "$2" "$T/$1" || fail "$1 lacks '$2': $(head -c 600 "$T/$1")"; }
G="-m $M --chat-template none --threads 1"

# 1. llama.cpp's greedy 64-token continuation, byte for byte: the reply only
# (the prompt is not echoed), then one newline
sed -n 's/^ *"gen_text": "\(.*\)"$/\1/p' "$CASE" >"$T/gen.esc"
printf '%b\n' "$(cat "$T/gen.esc")" >"$T/want"
[ -s "$T/want" ] || fail "cannot read gen_text from $CASE"
printf 'Once upon a time' >"$T/once"
run 0 "$T/once" "$P" $G --temp 0 -n 64 --no-history
cmp -s "$T/out" "$T/want" || fail "reply differs from llama.cpp's: $(od -c "$T/out" | head -5)"
[ -s "$T/err" ] && fail "stderr not empty: $(cat "$T/err")"
# the same with a trailing newline in the input and with -p
printf 'Once upon a time\n' >"$T/once-nl"
run 0 "$T/once-nl" "$P" $G --temp 0 -n 64 --no-history
cmp -s "$T/out" "$T/want" || fail "trailing newline in the input changed the reply"
run 0 /dev/null "$P" $G --temp 0 -n 64 --no-history -p 'Once upon a time'
cmp -s "$T/out" "$T/want" || fail "-p reply differs"
# --stats: timings on stderr, stdout unchanged
run 0 "$T/once" "$P" $G --temp 0 -n 64 --no-history --stats
cmp -s "$T/out" "$T/want" || fail "--stats changed stdout"
has err "prompt eval rate:"
has err "eval count:           64 token(s)"

# 2. determinism with sampling: same seed, same bytes; other seed, other bytes
printf 'Once upon a time\n\nThe dog\n\nA big tree' >"$T/three"
run 0 "$T/three" "$P" $G --temp 0.9 --seed 42 -n 40 --no-history
cp "$T/out" "$T/s1"
run 0 "$T/three" "$P" $G --temp 0.9 --seed 42 -n 40 --no-history
cmp -s "$T/out" "$T/s1" || fail "same seed gave different output"
run 0 "$T/three" "$P" $G --temp 0.9 --seed 43 -n 40 --no-history
cmp -s "$T/out" "$T/s1" && fail "another seed gave the same output"

# 3. --split and --json: one object per turn
run 0 "$T/three" "$P" $G --temp 0 -n 8 --no-history --json
[ "$(wc -l <"$T/out")" -eq 3 ] || fail "--split blank: wanted 3 JSON lines, got $(cat "$T/out")"
has out '"turn":3,"prompt":"A big tree"'
has out '"stop_reason":"max_tokens"'
has out '"gen_tokens":8'
run 0 "$T/three" "$P" $G --temp 0 -n 8 --no-history --json --split line
[ "$(wc -l <"$T/out")" -eq 3 ] || fail "--split line: wanted 3 JSON lines"
printf 'one\ntwo\nthree\n\nfour\n' >"$T/lines"
run 0 "$T/lines" "$P" $G --temp 0 -n 4 --no-history --json --split line
[ "$(wc -l <"$T/out")" -eq 4 ] || fail "--split line: wanted 4 JSON lines"
run 0 "$T/lines" "$P" $G --temp 0 -n 4 --no-history --json --split all
[ "$(wc -l <"$T/out")" -eq 1 ] || fail "--split all: wanted 1 JSON line"
has out '"prompt":"one\ntwo\nthree\n\nfour"'
run 0 "$T/lines" "$P" $G --temp 0 -n 4 --no-history --json
[ "$(wc -l <"$T/out")" -eq 2 ] || fail "--split blank: wanted 2 JSON lines"
# turns of one conversation: the second reuses the first's cache
has out '"turn":2,"prompt":"four"'
grep '"turn":2' "$T/out" | grep -q '"reused_tokens":0,' && fail "turn 2 reused nothing"
# plain output: replies separated by a blank line
run 0 "$T/lines" "$P" $G --temp 0 -n 4 --no-history
[ "$(grep -c '^$' "$T/out")" -ge 1 ] || fail "no blank line between replies"

# 4. exit codes
# PALAVER_MODEL set to nothing: no model at all, not the built-in one
run 2 "$T/once" env PALAVER_MODEL= "$P" --no-history
has err "no model"
run 2 "$T/once" "$P" $G --split words --no-history
has err "--split"
run 1 "$T/once" "$P" -m "$T/missing.gguf" --no-history
has err "missing.gguf"
: >"$T/empty"
run 2 "$T/empty" "$P" $G --no-history
has err "no input"

# 5. SIGINT: the reply so far is printed, exit 130 (shift keeps it going)
PALAVER_CONTEXT_OVERFLOW=shift "$P" $G --ctx 64 -n -1 --no-history \
	<"$T/once" >"$T/out" 2>"$T/err" &
pid=$!
# interrupt once the reply is streaming (at most 20 s from now)
i=0
while [ ! -s "$T/out" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.2
kill -INT $pid
wait $pid
rc=$?
[ "$rc" -eq 130 ] || fail "SIGINT: exit $rc, wanted 130: $(head -c 300 "$T/err")"
[ -s "$T/out" ] || fail "SIGINT: nothing printed"

# 6. history (issue 7): record, list, search, export, continue
H=$T/h.db
printf 'Hello\n\nTell me more\n' >"$T/hello"
run 0 "$T/hello" "$P" $G --temp 0 -n 12 --history "$H"
has err "palaver: session "
id=$(sed -n 's/^palaver: session \([0-9a-f]*\)$/\1/p' "$T/err")
cp "$T/out" "$T/hello-out"
run 0 /dev/null "$P" sessions --history "$H"
has out "$id"
has out "Hello"
run 0 /dev/null "$P" sessions search more --history "$H"
has out "$id"
run 0 /dev/null "$P" sessions export "$id" --format md --history "$H"
has out "Hello"
has out "Tell me more"
r1=$(sed -n 1p "$T/hello-out")
r2=$(sed -n 3p "$T/hello-out")
has out "$r1"
has out "$r2"
[ "$(grep -c '^## Assistant' "$T/out")" -eq 2 ] || fail "export lacks two replies"
# the session names its model (an absolute path): no -m needed, from any directory
(cd "$T" && "$P" --temp 0 -n 12 --threads 1 --history "$H" --session "$id" \
	-p 'and then?' </dev/null >"$T/out" 2>"$T/err") || fail "--session without -m: $(cat "$T/err")"
[ -s "$T/out" ] || fail "--session: no reply"
has err "palaver: session $id"
run 0 /dev/null "$P" sessions export "$id" --format md --history "$H"
has out "and then?"
[ "$(grep -c '^## Assistant' "$T/out")" -eq 3 ] || fail "the continued session lacks its third reply"
# stdin continues it too
printf 'more please\n' >"$T/more"
run 0 "$T/more" "$P" $G --temp 0 -n 4 --history "$H" --session "$id"
run 0 /dev/null "$P" sessions show "$id" --history "$H"
has out "more please"
run 1 "$T/more" "$P" $G --temp 0 -n 4 --history "$H" --session nosuchsession
# a history that cannot be opened: said once, the reply still comes
mkdir "$T/dir.db"
run 0 "$T/once" "$P" $G --temp 0 -n 64 --history "$T/dir.db"
cmp -s "$T/out" "$T/want" || fail "a broken history changed the reply"
[ "$(grep -c 'history is unavailable' "$T/err")" -eq 1 ] || fail "history failure not said once: $(cat "$T/err")"
# --no-history writes nothing
run 0 "$T/once" "$P" $G --temp 0 -n 4 --no-history
[ -e "$T/data/palaver/history.db" ] && fail "--no-history created the default database"

[ "$fails" -eq 0 ] || exit 1
echo "it_batch: ok"
