#!/bin/sh
# --mlock (pins or warns, exit 0 either way; same reply as without) and palaver bench --cold
# (its fields in Markdown and JSON, one setting or both, usage errors).  No timed assertions.
P=${PALAVER:-./palaver}
. "$(dirname "$0")/refdata.sh"
need_ref models/stories260K.gguf
M=$REF/models/stories260K.gguf
T=$(mktemp -d /tmp/palaver-it-cold.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data" XDG_STATE_HOME="$T/state" XDG_CACHE_HOME="$T/cache"
unset PALAVER_MODEL PALAVER_HISTORY_PATH PALAVER_MEMORY_LOCK PALAVER_SEED
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
has() { grep -q -F -- "$2" "$T/$1" || fail "$1 lacks '$2': $(head -c 600 "$T/$1")"; }
G="-m $M --chat-template none --threads 1 --temp 0 -n 16 --no-history"

# --mlock: the same reply; stderr is empty (pinned) or the one lock warning
"$P" $G -p 'Once upon a time' >"$T/plain" 2>"$T/plain.err" || fail "plain run exited $?"
"$P" $G --mlock -p 'Once upon a time' >"$T/out" 2>"$T/err" || fail "--mlock exited $?: $(cat "$T/err")"
cmp -s "$T/plain" "$T/out" || fail "--mlock changed the reply"
if [ -s "$T/err" ]; then
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "--mlock: more than one line on stderr: $(cat "$T/err")"
	has err "palaver: warning: cannot lock '"
	has err "ulimit -l"
fi

# without the right to lock (limit 0, and no root: run as nobody when root) it must warn
if [ "$(id -u)" = 0 ]; then
	command -v setpriv >/dev/null 2>&1 && chmod 755 "$T" &&
		runas="setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --"
	mkdir -p "$T/nobody" && chmod 777 "$T/nobody"
else
	runas=" "
	mkdir -p "$T/nobody"
fi
if [ -n "$runas" ] && (ulimit -l 0) 2>/dev/null; then
	(ulimit -l 0 && XDG_STATE_HOME="$T/nobody" XDG_DATA_HOME="$T/nobody" \
		XDG_CONFIG_HOME="$T/nobody" $runas "$P" $G --mlock -p 'Once upon a time') \
		>"$T/out" 2>"$T/err"
	rc=$?
	if grep -q "cannot open\|Permission denied" "$T/err"; then
		echo "note: the unprivileged run cannot read '$M'; the refused-lock case is not checked"
	else
		[ "$rc" -eq 0 ] || fail "--mlock with ulimit -l 0 exited $rc: $(cat "$T/err")"
		cmp -s "$T/plain" "$T/out" || fail "--mlock with ulimit -l 0 changed the reply"
		has err "palaver: warning: cannot lock '"
		has err "stories260K.gguf"
		has err "limit 0 B: raise it with 'ulimit -l'"
	fi
else
	echo "note: cannot run without the right to lock memory here; the refused-lock case is not checked"
fi

# the key and the variable reach the configuration, --mlock outranks both
PALAVER_MEMORY_LOCK=true "$P" config memory.lock >"$T/out" 2>&1 || fail "config memory.lock"
has out "true"
"$P" --mlock config memory.lock >"$T/out" 2>&1 || fail "--mlock config memory.lock"
has out "true"
mkdir -p "$T/config/palaver"
printf 'memory:\n  lock: maybe\n' >"$T/config/palaver/config.yaml"
"$P" config >"$T/out" 2>"$T/err"
[ $? -eq 2 ] || fail "memory.lock: maybe was accepted"
rm -f "$T/config/palaver/config.yaml"

# bench --cold: both settings by default, the report's fields
"$P" bench --cold --help >"$T/out" || fail "bench --cold --help"
has out "usage: palaver bench --cold"
"$P" bench --cold -m "$M" -r 1 -p 4 -n 2 -t 1 >"$T/out" 2>"$T/err" ||
	fail "bench --cold exited $?: $(cat "$T/err")"
for k in "cold start:" "| read-ahead | resident after drop | load ms | first token ms" \
	"first decode ms | tg2 t/s |" "| on |" "| off |" "layers full)" \
	"runs per setting"; do
	has out "$k"
done
# a drop that did not take is said, not hidden (another process may map the file)
if ! grep -q "| on | [0-9.]*% " "$T/out"; then fail "no resident-after-drop share: $(cat "$T/out")"; fi
"$P" bench --cold -m "$M" -r 2 -p 4 -n 2 -t 1 --format json --readahead off >"$T/out" 2>"$T/err" ||
	fail "bench --cold json exited $?: $(cat "$T/err")"
head -c 1 "$T/out" | grep -q '\[' || fail "bench --cold json is not an array"
for k in '"test": "cold"' '"readahead": false' '"repetitions": 2' '"n_prompt": 4' \
	'"n_gen": 2' drop_resident_max '"cold": ' load_ms_mean first_token_ms_mean \
	first_decode_ms_mean tg_t_s_mean '"hits_first_token": {"resident_pages": ' \
	'"layers": 10,' hits_decode readahead_pages_requested model_bytes; do
	has out "$k"
done
grep -q '"readahead": true' "$T/out" && fail "--readahead off ran with read-ahead"
"$P" bench --cold -m "$M" --readahead sideways >"$T/out" 2>"$T/err"
[ $? -eq 2 ] || fail "--readahead sideways was accepted"
has err "on, off or both"
"$P" bench --cold -m "$T/nope.gguf" -r 1 >"$T/out" 2>"$T/err"
[ $? -eq 1 ] || fail "a missing model did not exit 1"
has err "nope.gguf"
"$P" bench -m "$M" -p 8 -n 4 -r 1 --readahead off >"$T/out" 2>"$T/err" ||
	fail "bench --readahead off exited $?: $(cat "$T/err")"
has out "| tg4 |"

[ "$fails" -eq 0 ] || { echo "it_cold: $fails failed"; exit 1; }
echo "it_cold: ok"
