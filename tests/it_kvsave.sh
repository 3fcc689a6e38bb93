#!/bin/sh
# KV caches saved with sessions: resume equals re-prefill; another model, truncation, flipped
# bytes, a full disk and SIGKILL while writing all fall back to prefill and leave no partial file.
P=${PALAVER:-./palaver}
. "$(dirname "$0")/refdata.sh"
M=$REF/models/stories260K.gguf
M2=$REF/models/rand-llama-256-F32.gguf
need_ref models/stories260K.gguf models/rand-llama-256-F32.gguf
T=$(mktemp -d /tmp/palaver-it-kvsave.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data" XDG_STATE_HOME="$T/state"
export XDG_CACHE_HOME="$T/cache"
unset PALAVER_MODEL PALAVER_HISTORY_PATH PALAVER_CONTEXT_OVERFLOW PALAVER_SEED \
	PALAVER_KV_CACHE_MAX_DISK PALAVER_LOG_LEVEL PALAVER_LOG_FILE
KV=$T/cache/palaver/kv
LOG=$T/state/palaver/palaver.log
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# run STATUS CMD...: stdout in $T/out, stderr in $T/err
run() {
	want=$1; shift
	"$@" </dev/null >"$T/out" 2>"$T/err"; got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, wanted $want: $(head -c 600 "$T/err")"
}
has() { grep -q -F -- "$2" "$T/$1" || fail "$1 lacks '$2': $(head -c 600 "$T/$1")"; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$T/out"; }
reply() { sed -n 's/.*"reply":"\(.*\)","stop_reason".*/\1/p' "$T/out"; }
# only state files in the folder: no temporary or partial ones
only_states() {
	for f in "$KV"/* "$KV"/.[!.]*; do
		[ -e "$f" ] || continue
		case $(basename "$f") in
		*-????????????????.kv) ;;
		*) fail "$1: '$(basename "$f")' left in the KV folder" ;;
		esac
	done
}
G="-m $M --chat-template none --threads 1 --temp 0"

# 1. a session's reply saves its state; the row points at it
printf 'Once upon a time' >"$T/once"
"$P" $G -n 96 --history "$T/h.db" <"$T/once" >"$T/out" 2>"$T/err" || fail "first turn: $(cat "$T/err")"
id=$(sed -n 's/^palaver: session \([0-9a-f]*\)$/\1/p' "$T/err")
[ -n "$id" ] || fail "no session id: $(cat "$T/err")"
set -- "$KV"/"$id"-*.kv
F=$1
[ -f "$F" ] || fail "no state saved in $KV"
cp "$F" "$T/state.orig"
cp "$T/h.db" "$T/h.orig"
run 0 "$P" sessions show "$id" --history "$T/h.db"
has out "saved KV cache: $F ("
run 0 "$P" cache
has out "$id"
has out "llama"
has out "1 saved"

# resume (a copy of the history; the state as given): one JSON line in $T/out
resume() {
	cp "$T/h.orig" "$T/h.run"
	"$P" $G -n 24 --history "$T/h.run" --session "$id" -p ' The dog' --json "$@" \
		</dev/null >"$T/out" 2>"$T/err" || fail "resume $*: $(cat "$T/err")"
}
# 2. without the state (kv_cache.max_disk 0 reads none) and with it: the same reply
PALAVER_KV_CACHE_MAX_DISK=0 resume
want=$(reply)
[ -n "$want" ] || fail "no reply without the state: $(cat "$T/out")"
[ "$(field restored_tokens)" = 0 ] || fail "restored without a state"
cmp -s "$F" "$T/state.orig" || fail "max_disk 0 wrote a state"
prompt_tokens=$(field prompt_tokens)
resume
[ "$(reply)" = "$want" ] || fail "the reply after a restore differs: $(reply) / $want"
restored=$(field restored_tokens)
[ "${restored:-0}" -gt 90 ] || fail "nothing restored: $(cat "$T/out")"
[ "$(field reused_tokens)" = "$restored" ] || fail "reused and restored differ: $(cat "$T/out")"
grep -q "kv state '$F' read: " "$LOG" || fail "the log does not say the state was read"
only_states "resume"

# 3. faults: each is ignored with a note in the log, the reply is the same, nothing is left
fault() { # NAME: resume with $F as prepared, check, then restore the original
	: >"$LOG"
	resume
	[ "$(reply)" = "$want" ] || fail "$1: the reply differs: $(reply)"
	[ "$(field restored_tokens)" = 0 ] || fail "$1: restored $(field restored_tokens) tokens"
	[ "$(field prompt_tokens)" = "$prompt_tokens" ] || fail "$1: prompt of $(field prompt_tokens) tokens"
	grep -q "kv state '$F' ignored: " "$LOG" || fail "$1: no note in the log: $(cat "$LOG")"
	only_states "$1"
	cp "$T/state.orig" "$F"
}
# another model's state under this model's name
printf 'Once upon a time' | "$P" -m "$M2" --chat-template none --threads 1 --temp 0 -n 96 \
	--history "$T/h2.db" >/dev/null 2>"$T/err2" || fail "other model: $(cat "$T/err2")"
id2=$(sed -n 's/^palaver: session \([0-9a-f]*\)$/\1/p' "$T/err2")
set -- "$KV"/"$id2"-*.kv
cp "$1" "$F"
fault "another model"
grep -q "saved with another model" "$T/state/palaver/palaver.log" ||
	fail "the note does not name the other model"
# truncated at every 4 KiB
size=$(wc -c <"$T/state.orig")
[ "$size" -gt 40000 ] || fail "the state is too small to cut ($size bytes)"
at=0
while [ $at -lt "$size" ]; do
	head -c $at "$T/state.orig" >"$F"
	fault "truncated at $at"
	at=$((at + 4096))
done
# flipped bytes: the header, the token list, the K/V data, the last byte
for at in 9 130 300 1000 $((size / 2)) $((size - 1)); do
	cp "$T/state.orig" "$F"
	printf '\377' | dd of="$F" bs=1 seek=$at conv=notrunc 2>/dev/null
	cmp -s "$F" "$T/state.orig" && printf '\001' | dd of="$F" bs=1 seek=$at conv=notrunc 2>/dev/null
	fault "byte $at flipped"
done

# 4. a full disk while writing: a tmpfs with room for the old state only (in a
# mount namespace of our own, where the system allows one)
cat >"$T/full.sh" <<EOF
mount -t tmpfs -o size=$(((size + 8191) / 4096 * 4096 + 4096)) tmpfs "$T/cache" || exit 77
mkdir -p "$KV" && cp "$T/state.orig" "$F" || exit 3
cp "$T/h.orig" "$T/h.full"
"$P" $G -n 24 --history "$T/h.full" --session $id -p ' The dog and the cat' --json \
	</dev/null >"$T/out" 2>"$T/err" || exit 4
cmp -s "$F" "$T/state.orig" || exit 5
[ "\$(ls -A "$KV")" = "\$(basename "$F")" ] || exit 6
exit 0
EOF
rm -rf "$T/cache"
mkdir -p "$T/cache"
if unshare -rm true 2>/dev/null; then
	unshare -rm sh "$T/full.sh"
	rc=$?
	case $rc in
	77) echo "note: cannot mount a tmpfs here: the full-disk case runs in test_kv_state only" ;;
	0) has err "warning: the KV cache was not saved:"
	   has err "No space left on device"
	   grep -q '"reply":"' "$T/out" || fail "disk full: no reply" ;;
	*) fail "disk full: step $rc: $(cat "$T/err" 2>/dev/null)" ;;
	esac
	if [ $rc -eq 0 ]; then
		"$P" sessions show "$id" --history "$T/h.full" >"$T/show" 2>&1
		grep -q "The dog and the cat" "$T/show" || fail "disk full: the turn is not in the history"
	fi
else
	echo "note: no mount namespace here (unshare -rm): the full-disk case runs in test_kv_state only"
fi
mkdir -p "$KV"
cp "$T/state.orig" "$F"

# 5. SIGKILL while writing: a model with a large cache (128 layers) so that a
# save takes long enough to be caught with its file open
W=$T/wide.gguf
"$P" mkmodel --dim 64 --layers 128 --heads 1 --ffn 64 --ctx 1024 --vocab "$M" "$W" \
	>/dev/null 2>&1 || fail "mkmodel"
GW="-m $W --chat-template none --threads 1 --temp 0"
awk 'BEGIN { for (i = 0; i < 60; i++) printf "Once upon a time "; }' >"$T/long"
"$P" $GW -n 1 --history "$T/hw.db" <"$T/long" >/dev/null 2>"$T/err" || fail "wide: $(cat "$T/err")"
idw=$(sed -n 's/^palaver: session \([0-9a-f]*\)$/\1/p' "$T/err")
set -- "$KV"/"$idw"-*.kv
FW=$1
[ -f "$FW" ] || fail "wide: no state"
caught=0
try=0
while [ $try -lt 12 ] && [ $caught -lt 2 ]; do
	try=$((try + 1))
	cp "$FW" "$T/wide.before"
	"$P" $GW -n 2 --history "$T/hw.db" --session "$idw" -p " and $try" --json \
		</dev/null >"$T/out" 2>"$T/err" &
	pid=$!
	# the engine writes into an unnamed file in the KV folder (its descriptor
	# shows "kv/#INODE (deleted)"); stop the process there, look again, kill it
	hit=
	while kill -0 $pid 2>/dev/null; do
		if ls -l /proc/$pid/fd 2>/dev/null | grep -q -e "$KV/#" -e "$KV/\.[^ ]*tmp"; then
			kill -STOP $pid
			hit=$(ls -l /proc/$pid/fd 2>/dev/null | grep -o "$KV/[^ ]*" | sed 's,.*/,,' | tr '\n' ' ')
			kill -KILL $pid
			break
		fi
	done
	wait $pid 2>/dev/null
	case $hit in
	*"#"*) # mid-write: nothing of it may remain, the old state is whole
		caught=$((caught + 1))
		cmp -s "$FW" "$T/wide.before" || fail "SIGKILL $try: the old state changed" ;;
	*.tmp*) # written, synced and named, not yet renamed: the next listing removes it
		"$P" cache >/dev/null 2>&1 ;;
	esac
	only_states "SIGKILL $try"
	if [ -n "$hit" ]; then
		"$P" sessions show "$idw" --history "$T/hw.db" >"$T/show" 2>&1
		grep -q "and $try" "$T/show" || fail "SIGKILL $try: the turn was lost"
	fi
done
[ $caught -gt 0 ] || echo "note: no SIGKILL landed during a write in $try tries (test_kv_state kills one for sure)"
# the next resume reads the old state and goes on
"$P" $GW -n 2 --history "$T/hw.db" --session "$idw" -p ' after' --json </dev/null \
	>"$T/out" 2>"$T/err" || fail "after SIGKILL: $(cat "$T/err")"
[ "$(field restored_tokens)" -gt 100 ] || fail "after SIGKILL: nothing restored: $(cat "$T/out")"

# 6. the cap evicts, palaver cache clear and sessions delete remove
PALAVER_KV_CACHE_MAX_DISK=$((size + 1000)) "$P" $GW -n 1 --history "$T/hw.db" \
	--session "$idw" -p ' cap' --json </dev/null >"$T/out" 2>"$T/err"
has err "is larger than kv_cache.max_disk"
run 0 "$P" cache clear "$idw"
has err "removed 1 saved KV cache"
[ -f "$FW" ] && fail "cache clear left $FW"
run 0 "$P" sessions delete "$id" --yes --history "$T/h.db"
has err "removed 1 saved KV cache of session $id"
[ -f "$F" ] && fail "sessions delete left $F"
run 0 "$P" cache clear
run 0 "$P" cache
has err "no saved KV caches"
run 2 "$P" cache frobnicate
has err "'frobnicate' is not a cache command"
# --no-history: no session, no state
printf 'Hi' | "$P" $G -n 4 --no-history >/dev/null 2>&1
[ -n "$(ls -A "$KV")" ] && fail "--no-history saved a state: $(ls -A "$KV")"

[ "$fails" -eq 0 ] || exit 1
echo "it_kvsave: ok ($caught of $try SIGKILLs landed mid-write)"
