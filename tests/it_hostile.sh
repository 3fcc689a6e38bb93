#!/bin/sh
# Hostile inputs (issue 16): each class of failure found by attacking palaver, one section each.
P=${PALAVER:-./palaver}
. "$(dirname "$0")/refdata.sh"
need_ref models/stories260K.gguf
M=$REF/models/stories260K.gguf
T=$(mktemp -d /tmp/palaver-it-hostile.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data" XDG_STATE_HOME="$T/state"
unset PALAVER_MODEL PALAVER_HISTORY_PATH PALAVER_CONTEXT_OVERFLOW PALAVER_SEED
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# run STATUS INPUT CMD...: stdin from INPUT; stdout in $T/out, stderr in $T/err
run() {
	want=$1 in=$2; shift 2
	"$@" <"$in" >"$T/out" 2>"$T/err"; got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, wanted $want: $(head -c 600 "$T/err")"
}
has() { grep -q -F -- "$2" "$T/$1" || fail "$1 lacks '$2': $(head -c 600 "$T/$1")"; }
G="-m $M --chat-template none --threads 1 --temp 0"
printf 'Once upon a time' >"$T/once"
run 0 "$T/once" "$P" $G -n 16 --no-history
cp "$T/out" "$T/want"

# 1. a history header version out of range: refused untouched, said once,
# the replies still come (the version indexed the migrations: a crash)
H=$T/h.db
run 0 "$T/once" "$P" $G -n 4 --history "$H"
sqlite3 "$H" 'PRAGMA journal_mode = DELETE' >/dev/null || fail "sqlite3 failed"
for v in -1 -7 -100000000 99; do
	sqlite3 "$H" "PRAGMA user_version = $v" || fail "sqlite3 failed"
	cp "$H" "$T/h.before"
	run 0 "$T/once" "$P" $G -n 16 --history "$H"
	cmp -s "$T/out" "$T/want" || fail "version $v: the reply differs"
	[ "$(grep -c 'history is unavailable' "$T/err")" -eq 1 ] || fail "version $v: not said once: $(cat "$T/err")"
	has err "schema version $v"
	cmp -s "$H" "$T/h.before" || fail "version $v: the database was changed"
	run 1 /dev/null "$P" sessions list --history "$H"
	has err "schema version $v"
done

# 3. a file size limit (ulimit -f): writes past it fail with EFBIG, as on a
# full disk, instead of SIGXFSZ killing palaver with the reply unprinted
H=$T/fsize.db
sh -c "ulimit -f 16; exec \"\$@\"" sh "$P" $G -n 16 --history "$H" -p 'Once upon a time' \
	</dev/null >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 0 ] || fail "ulimit -f: exit $rc, wanted 0: $(cat "$T/err")"
cmp -s "$T/out" "$T/want" || fail "ulimit -f: the reply was not printed"
[ "$(grep -c 'history is unavailable: .*File too large' "$T/err")" -eq 1 ] ||
	fail "ulimit -f: no single 'File too large' message: $(cat "$T/err")"

# 4. output that cannot be written: every command says so and exits 1;
# a reader that left (EPIPE, with SIGPIPE ignored) is not an error
H=$T/out.db
run 0 "$T/once" "$P" $G -n 4 --history "$H"
id=$(sed -n 's/^palaver: session \([0-9a-f]*\)$/\1/p' "$T/err")
full() {
	"$@" </dev/null >/dev/full 2>"$T/err"; got=$?
	[ "$got" -eq 1 ] || fail "'$*' >/dev/full exited $got, wanted 1"
	grep -q 'cannot write standard output: No space left on device' "$T/err" ||
		fail "'$*' >/dev/full did not say so: $(cat "$T/err")"
}
full "$P" $G -n 4 --no-history -p hi
full "$P" $G -n 4 --no-history --json -p hi
full "$P" $G -n 4 --no-history --split line -p "$(printf 'a\nb')"
full "$P" sessions list --history "$H"
full "$P" sessions show "$id" --history "$H"
full "$P" sessions export "$id" --history "$H"
full "$P" sessions export "$id" --format json --history "$H"
full "$P" sessions search Once --history "$H"
full "$P" inspect "$M"
full "$P" tokenize -m "$M" hello
full "$P" config
full "$P" --help
full "$P" --version
(
	trap '' PIPE
	{ "$P" inspect "$M" 2>"$T/err"; echo $? >"$T/rc"; } | head -c 10 >/dev/null
)
[ "$(cat "$T/rc")" -eq 0 ] || fail "EPIPE: exit $(cat "$T/rc"), wanted 0"
[ -s "$T/err" ] && fail "EPIPE was reported: $(cat "$T/err")"

# 5. escape sequences from files never reach a terminal raw: a GGUF whose
# architecture retitles the window, a session whose title and text clear
# the screen; on a terminal (script(1) gives a pty) they show as ^[ and
# U+FFFD, into a pipe or a file they stay as they are
ESC=$(printf '\033')
# tty CMD...: run CMD on a pty, its output in $T/tty
tty_run() {
	script -qec "$*" /dev/null </dev/null >"$T/tty" 2>&1
}
raw_esc() { grep -q "$ESC" "$T/$1"; }
# a header-only GGUF: general.architecture = "ll<ESC>]0;PWNED<BEL>ama"
{
	printf 'GGUF\003\000\000\000'
	printf '\000\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000'
	printf '\024\000\000\000\000\000\000\000general.architecture\010\000\000\000'
	printf '\017\000\000\000\000\000\000\000ll\033]0;PWNED\007ama'
} >"$T/esc.gguf"
tty_run "$P" inspect "$T/esc.gguf"
raw_esc tty && fail "inspect wrote an escape sequence to the terminal: $(od -c "$T/tty" | head -5)"
grep -q 'architecture: ll^\[\]0;PWNED^Gama' "$T/tty" || fail "inspect: no visible architecture: $(cat "$T/tty")"
run 1 /dev/null "$P" -m "$T/esc.gguf" -p hi --no-history
raw_esc err && fail "an error message carried an escape sequence: $(od -c "$T/err" | head -5)"
cat >"$T/esc.json" <<'EOF2'
{"format": "palaver-session", "version": 1, "id": "0badc0de", "title": "t\u001b]0;PWNED\u0007",
 "model": "m\u001b[2J", "system_prompt": "s\u009b31m",
 "messages": [{"role": "user", "content": "hello \u001b[2J\u001b[H world"},
  {"role": "assistant", "content": "reply \u001b]2;x\u0007 there"}]}
EOF2
H=$T/esc.db
run 0 /dev/null "$P" sessions import "$T/esc.json" --history "$H"
for sub in list "show 0badc0de" "export 0badc0de" "search world"; do
	tty_run "$P" sessions $sub --history "$H"
	# search highlights its matches in bold on a terminal: those are ours
	sed 's/\x1b\[1m//g; s/\x1b\[0m//g' "$T/tty" >"$T/tty2"
	raw_esc tty2 && fail "sessions $sub wrote an escape sequence to the terminal: $(od -c "$T/tty" | head -5)"
	grep -q '\^\[' "$T/tty" || fail "sessions $sub: no visible ^[: $(cat "$T/tty")"
done
# into a file the export keeps the bytes (the format may need them)
run 0 /dev/null "$P" sessions export 0badc0de --history "$H"
raw_esc out || fail "export to a file lost the message's bytes"
# replies on a terminal too (a token's piece comes from the file)
tty_run "$P" $G -n 16 --no-history -p "'Once upon a time'"
raw_esc tty && fail "batch mode wrote an escape sequence to the terminal"

# 6. bytes that are not UTF-8 never make JSON that is not: --json and
# sessions export --format json write U+FFFD for them (iconv checks UTF-8,
# sessions import parses the export again)
utf8_ok() { iconv -f UTF-8 -t UTF-8 "$T/$1" >/dev/null 2>&1; }
printf 'bad \377\376 bytes \300\200 end\n\nhalf \342\202\n' >"$T/bad-utf8"
H=$T/utf8.db
run 0 "$T/bad-utf8" "$P" $G -n 4 --json --history "$H"
utf8_ok out || fail "--json wrote invalid UTF-8: $(od -c "$T/out" | head -3)"
has out '"prompt":"bad \ufffd\ufffd bytes \ufffd\ufffd end"'
id=$(sed -n 's/^palaver: session \([0-9a-f]*\)$/\1/p' "$T/err")
run 0 /dev/null "$P" sessions export "$id" --format json --history "$H"
utf8_ok out || fail "export --format json wrote invalid UTF-8: $(od -c "$T/out" | head -3)"
cp "$T/out" "$T/exported.json"
run 0 /dev/null "$P" sessions import "$T/exported.json" --history "$T/utf8-2.db"

# 7. every whole-file reader has a limit: /dev/zero (or an endless pipe) is
# refused with the limit named, in bounded memory and time
bounded() {
	want=$1; shift
	timeout 60 sh -c 'ulimit -v 4000000; exec "$@"' sh "$@" >"$T/out" 2>"$T/err"; got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, wanted $want: $(head -c 300 "$T/err")"
	grep -q 'larger than' "$T/err" || fail "'$*' did not name the limit: $(head -c 300 "$T/err")"
}
bounded 1 "$P" $G --no-history --chat-template /dev/zero -p hi </dev/null
bounded 2 "$P" --config /dev/zero config </dev/null
bounded 1 "$P" $G --no-history </dev/zero
bounded 1 "$P" tokenize -m "$M" -f /dev/zero </dev/null
bounded 1 "$P" tokenize -m "$M" </dev/zero
bounded 1 "$P" perplexity -m "$M" -f /dev/zero </dev/null
bounded 1 "$P" sessions import /dev/zero --history "$T/z.db" </dev/null
bounded 1 "$P" sessions import - --history "$T/z.db" </dev/zero

# 9. SIGTERM and SIGHUP in batch mode are SIGINT: the text shown is the
# text saved, as cancelled, and the exit status is 128 + the signal
for sig in TERM HUP INT; do
	H=$T/sig-$sig.db
	PALAVER_CONTEXT_OVERFLOW=shift "$P" $G --ctx 64 -n -1 --history "$H" \
		<"$T/once" >"$T/out" 2>"$T/err" &
	pid=$!
	i=0
	while [ "$(wc -c <"$T/out")" -lt 200 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	kill -$sig $pid
	wait $pid
	rc=$?
	case $sig in TERM) want=143 ;; HUP) want=129 ;; INT) want=130 ;; esac
	[ "$rc" -eq "$want" ] || fail "SIG$sig: exit $rc, wanted $want: $(head -c 300 "$T/err")"
	st=$(sqlite3 "$H" "SELECT status FROM messages WHERE role = 'assistant'")
	[ "$st" = cancelled ] || fail "SIG$sig: the reply is '$st', not cancelled"
	sqlite3 "$H" "SELECT writefile('$T/saved', content) FROM messages WHERE role = 'assistant'" >/dev/null
	printf '\n' >>"$T/saved"
	cmp -s "$T/out" "$T/saved" ||
		fail "SIG$sig: shown $(wc -c <"$T/out") bytes, saved $(wc -c <"$T/saved")"
done

# 11. read-only commands need no write access: list, show, search and
# export work on a read-only file in a read-only directory; writing says
# which permission is missing (as root, run as nobody: root writes anyway)
if [ "$(id -u)" -eq 0 ]; then
	as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups \
		env HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME=/nonexistent "$@"; }
else
	as_user() { "$@"; }
fi
chmod 755 "$T"
mkdir "$T/ro"
H=$T/ro/h.db
run 0 "$T/once" "$P" $G -n 4 --history "$H"
id=$(sed -n 's/^palaver: session \([0-9a-f]*\)$/\1/p' "$T/err")
chmod 444 "$H"
chmod 555 "$T/ro"
for sub in list "show $id" "export $id" "export $id --format json" "search Once"; do
	as_user "$P" sessions $sub --history "$H" </dev/null >"$T/out" 2>"$T/err" ||
		fail "sessions $sub on a read-only history: $(cat "$T/err")"
	grep -q 'Once' "$T/out" || fail "sessions $sub on a read-only history printed nothing"
done
as_user "$P" sessions rename "$id" new --history "$H" </dev/null >"$T/out" 2>"$T/err"
grep -q "read-only (no permission to write it)" "$T/err" || fail "rename: $(cat "$T/err")"
chmod 666 "$H"
as_user "$P" sessions rename "$id" new --history "$H" </dev/null >"$T/out" 2>"$T/err"
grep -q "its directory '$T/ro' is not writable" "$T/err" || fail "rename: $(cat "$T/err")"
chmod 755 "$T/ro"
chmod 000 "$H"
as_user "$P" sessions list --history "$H" </dev/null >"$T/out" 2>"$T/err"
grep -q "Permission denied" "$T/err" || fail "an unreadable history: $(cat "$T/err")"
chmod 644 "$H"
chmod 700 "$T"

# 12a. a long batch in a small context: drop-oldest and shift answer every
# turn; stop refuses the turn that no longer fits and names the turns left
# unanswered (with --json one line per turn all the same), exit 1
i=1
while [ $i -le 300 ]; do echo "Once upon a time number $i"; i=$((i + 1)); done >"$T/300"
for pol in drop-oldest shift; do
	run 0 "$T/300" env PALAVER_CONTEXT_OVERFLOW=$pol "$P" $G -n 8 --ctx 256 --split line --json --no-history
	[ "$(grep -c '"reply":"' "$T/out")" -eq 300 ] || fail "$pol: $(grep -c '"reply":"' "$T/out") of 300 turns answered"
done
run 1 "$T/300" env PALAVER_CONTEXT_OVERFLOW=stop "$P" $G -n 8 --ctx 256 --split line --json --no-history
[ "$(wc -l <"$T/out")" -eq 300 ] || fail "stop: $(wc -l <"$T/out") JSON lines for 300 turns"
k=$(grep -c '"reply":"' "$T/out")
[ "$k" -gt 0 ] && [ "$k" -lt 300 ] || fail "stop: $k turns answered"
has out '"turn":300,"prompt":"Once upon a time number 300","reply":null,"error":'
has err "turns $((k + 1)) to 300 are not answered"

# 12b. a NUL byte on standard input is refused, not a turn cut short
printf 'Once upon\000 a time' >"$T/nul"
run 2 "$T/nul" "$P" $G -n 4 --no-history
has err "standard input has a NUL byte (at byte 9)"

# 12c. a PALAVER_* variable that names no setting is said, with the
# nearest name
run 0 /dev/null env PALAVER_TEMPRATURE=0.5 PALAVER_FROBNICATE=1 "$P" config
has err "warning: unknown environment variable \$PALAVER_TEMPRATURE is ignored; did you mean \$PALAVER_TEMPERATURE?"
has err "warning: unknown environment variable \$PALAVER_FROBNICATE is ignored"
run 0 /dev/null env PALAVER_REF_DIR=/x PALAVER_TEMPERATURE=0.5 "$P" config
[ -s "$T/err" ] && fail "known variables were warned about: $(cat "$T/err")"

# 12d. -t 0 means the online cores for every command, as in the chat
run 0 /dev/null "$P" logits -m "$M" -t 0 --tokens '1 403 407' -o "$T/logits.f32"
run 0 /dev/null "$P" perplexity -m "$M" -t 0 --ctx 64 --chunks 1 -f "$T/300"
run 0 /dev/null "$P" $G -t 0 -n 2 --no-history -p Once

# 12e. an error names the file once: a model without a tokenizer
perl -pe 's/tokenizer\.ggml\.model/tokenizer.ggml.modex/g' "$M" >"$T/notok.gguf"
run 1 /dev/null "$P" -m "$T/notok.gguf" --chat-template none -p hi --no-history
[ "$(grep -o "$T/notok.gguf" "$T/err" | wc -l)" -eq 1 ] || fail "the path is said twice: $(cat "$T/err")"

# 12h. a search word that starts with '-' is a word, not an option
H=$T/dash.db
printf 'the -dog barked\n' >"$T/dog"
run 0 "$T/dog" "$P" $G -n 2 --history "$H"
run 0 /dev/null "$P" sessions search -dog --history "$H"
has out "dog"
run 0 /dev/null "$P" sessions search --history "$H" -- -dog
has out "dog"
run 2 /dev/null "$P" sessions list -dog --history "$H"
has err "unknown option '-dog' for 'sessions list' (put '--' before"

# 12i. hostile YAML nesting is refused at once (100,000 levels took 53 s)
awk 'BEGIN { printf "model: "; for (i = 0; i < 100000; i++) printf "["; for (i = 0; i < 100000; i++) printf "]"; print "" }' >"$T/deep.yaml"
timeout 20 "$P" --config "$T/deep.yaml" config </dev/null >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 2 ] || fail "deep YAML: exit $rc, wanted 2: $(head -c 300 "$T/err")"
has err "deep.yaml:1:"
has err "nested deeper than 32 levels"

# 12g. a terminal that cannot move the cursor gets a clear refusal, not an
# unusable full-screen chat
TERM=dumb script -qec "$P -m $M --chat-template none --no-history" /dev/null </dev/null >"$T/tty" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "TERM=dumb: exit $rc, wanted 1: $(head -c 300 "$T/tty")"
grep -q "the terminal 'dumb' cannot move the cursor" "$T/tty" || fail "TERM=dumb: $(head -c 300 "$T/tty")"
raw_esc tty && fail "TERM=dumb: escape sequences were written: $(od -c "$T/tty" | head -3)"

[ "$fails" -eq 0 ] || exit 1
echo "it_hostile: ok"
