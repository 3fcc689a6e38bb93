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
for v in -1 -7 -100000000 3; do
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

[ "$fails" -eq 0 ] || exit 1
echo "it_hostile: ok"
