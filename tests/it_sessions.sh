#!/bin/sh
# palaver sessions: list, show, search, export, import, rename, delete against a scratch database.
P=${PALAVER:-./palaver}
T=$(mktemp -d /tmp/palaver-it-sessions.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
# deleting a session removes its saved KV caches: only in the scratch folder
export XDG_CACHE_HOME="$T/cache"
H=$T/h.db
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect STATUS CMD...: run, keep stdout in $T/out and stderr in $T/err
expect() {
	want=$1; shift
	"$@" >"$T/out" 2>"$T/err" </dev/null; got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, wanted $want: $(cat "$T/err")"
}
has() { grep -q -F -- "$2" "$T/$1" || fail "$1 lacks '$2': $(head -c 600 "$T/$1")"; }

cat >"$T/s.json" <<'EOF'
{"format": "palaver-session", "version": 1, "id": "0123abcd", "title": "Hello",
 "title_auto": true, "model": "stories.gguf", "system_prompt": "Be kind.",
 "sampling": {"temperature": 0.8, "top_k": 40},
 "created_ms": 1790000000000, "updated_ms": 1790000005000,
 "messages": [
  {"role": "user", "content": "Hello"},
  {"role": "assistant", "content": "Hi there! Once upon a time.", "gen_tokens": 7, "gen_ms": 100},
  {"role": "user", "content": "Tell me more"},
  {"role": "assistant", "status": "cancelled", "content": "More (stuff) about \"the moon\" — naïve café."}
 ]}
EOF

# help for every subcommand
for sub in list show search export import rename delete; do
	expect 0 "$P" sessions "$sub" --help
	has out "usage: palaver sessions"
done
expect 0 "$P" sessions --help
has out "palaver sessions export ID [--format md|json] [-o FILE]"
expect 2 "$P" sessions frobnicate --history "$H"
has err "'frobnicate' is not a sessions command"
expect 2 "$P" sessions show --history "$H"
has err "too few arguments"
expect 2 "$P" sessions list --bogus --history "$H"

# an empty database lists nothing (and is created with its directories)
expect 0 "$P" sessions --history "$T/deep/er/h.db"
has err "no saved sessions"
[ -f "$T/deep/er/h.db" ] || fail "database not created"

expect 0 "$P" sessions import "$T/s.json" --history "$H"
has out 0123abcd
expect 0 "$P" sessions --history "$H"
has out "0123abcd"
has out "Hello"
has out "4"
# --history before the subcommand's operands, and --history=FILE
expect 0 "$P" sessions --history="$H" list
has out "0123abcd"

expect 0 "$P" sessions search more --history "$H"
has out "Tell me [more]"
has out "0123abcd"
expect 0 "$P" sessions search '"moon' --history "$H"
has out "[moon]"
expect 0 "$P" sessions search cafe --history "$H"
expect 0 "$P" sessions search 'naïve' --history "$H"
for q in '(' '"' '*' 'NOT' 'a OR' 'x:y' '(stuff)' "'"; do
	"$P" sessions search "$q" --history "$H" >/dev/null 2>"$T/err"
	rc=$?
	[ $rc -le 1 ] || fail "search '$q' exited $rc"
	grep -q -i "syntax\|fts5" "$T/err" && fail "search '$q': $(cat "$T/err")"
done
expect 1 "$P" sessions search zebra --history "$H"
has err "nothing matches 'zebra'"

expect 0 "$P" sessions show hel --history "$H"
has out "session 0123abcd: Hello"
has out "Tell me more"
has out "assistant (cancelled):"
has out "system prompt: Be kind."

expect 0 "$P" sessions export 0123abcd --history "$H"
has out "# Hello"
has out "## User"
has out "Hi there! Once upon a time."
has out "## Assistant (cancelled)"
expect 0 "$P" sessions export 0123abcd --format json -o "$T/e1.json" --history "$H"
[ -s "$T/e1.json" ] || fail "export -o wrote nothing"
expect 2 "$P" sessions export 0123abcd --format yaml --history "$H"
has err "unknown export format 'yaml'"

# JSON round trip through a second database: byte for byte the same export
expect 0 "$P" sessions import "$T/e1.json" --history "$T/h2.db"
has out 0123abcd
expect 0 "$P" sessions export 0123abcd --format json -o "$T/e2.json" --history "$T/h2.db"
cmp -s "$T/e1.json" "$T/e2.json" || fail "JSON export differs after import"
# importing into the same database gives a new id
expect 0 "$P" sessions import "$T/e1.json" --history "$H"
grep -q 0123abcd "$T/out" && fail "import reused a taken id"
second=$(cat "$T/out")
expect 1 "$P" sessions show hello --history "$H"
has err "matches 2 sessions"
has err "0123abcd"
# from standard input, and --limit
"$P" sessions import - --history "$T/h3.db" <"$T/e1.json" >"$T/out" 2>"$T/err" || fail "import -: $(cat "$T/err")"
has out 0123abcd
expect 0 "$P" sessions list --limit 1 --history "$H"
[ "$(wc -l <"$T/out")" -eq 2 ] || fail "--limit 1 listed $(wc -l <"$T/out") lines"
expect 2 "$P" sessions list --limit x --history "$H"
expect 1 "$P" sessions import "$T/s.json.missing" --history "$H"
printf '{"format": "nope"}' >"$T/bad.json"
expect 1 "$P" sessions import "$T/bad.json" --history "$H"
has err "not a palaver session export"

# hostile imports (issue 16): sampling outside config.yaml's ranges is left
# out and said; NUL in content, absurd times and unknown roles are refused
hostile() { # NAME SAMPLING MESSAGE-JSON
	printf '{"format": "palaver-session", "id": "%s", "sampling": %s, "created_ms": 1790000000000, "messages": [%s]}' \
		"$1" "$2" "$3" >"$T/$1.json"
}
hostile 0000beef '{"temperature": 1e308, "top_p": -5, "top_k": 40, "seed": 7}' '{"role": "user", "content": "hi"}'
expect 0 "$P" sessions import "$T/0000beef.json" --history "$T/h4.db"
has err "'sampling.temperature' must be between 0 and 10, not 1e+308; left out"
has err "'sampling.top_p' must be between 0 and 1, not -5; left out"
expect 0 "$P" sessions show 0000beef --history "$T/h4.db"
has out 'sampling: {"top_k":40,"seed":7}'
grep -q "temperature" "$T/out" && fail "an out-of-range temperature was imported"
# the repaired session exports and imports back byte for byte
expect 0 "$P" sessions export 0000beef --format json -o "$T/r1.json" --history "$T/h4.db"
expect 0 "$P" sessions import "$T/r1.json" --history "$T/h5.db"
[ -s "$T/err" ] && fail "a repaired session warns again: $(cat "$T/err")"
expect 0 "$P" sessions export 0000beef --format json -o "$T/r2.json" --history "$T/h5.db"
cmp -s "$T/r1.json" "$T/r2.json" || fail "a repaired session's export differs after import"
hostile 0000dead '{}' '{"role": "user", "content": "cut\u0000here"}'
expect 1 "$P" sessions import "$T/0000dead.json" --history "$T/h4.db"
has err "message 1's content holds a NUL character"
hostile 0000f00d '{}' '{"role": "user", "content": "x", "created_ms": 1e300}'
expect 1 "$P" sessions import "$T/0000f00d.json" --history "$T/h4.db"
has err "message 1: 'created_ms' must be an integer from 0 to 253402300799999, not 1e+300"
hostile 0000f00e '{}' '{"role": "user", "content": "x", "gen_tokens": -3}'
expect 1 "$P" sessions import "$T/0000f00e.json" --history "$T/h4.db"
has err "'gen_tokens' must be an integer from 0"
hostile 0000f00f '{}' '{"role": "wizard", "content": "x"}'
expect 1 "$P" sessions import "$T/0000f00f.json" --history "$T/h4.db"
has err "the unknown role 'wizard'"
expect 1 "$P" sessions show 0000dead --history "$T/h4.db"

expect 0 "$P" sessions rename 0123abcd Moon talk --history "$H"
expect 0 "$P" sessions show moon --history "$H"
has out "session 0123abcd: Moon talk"

# delete: refuses without a terminal, --yes deletes
expect 2 "$P" sessions delete 0123abcd --history "$H"
has err "use --yes"
expect 0 "$P" sessions show 0123abcd --history "$H"
expect 0 "$P" sessions delete 0123abcd --yes --history "$H"
expect 1 "$P" sessions show 0123abcd --history "$H"
expect 0 "$P" sessions delete "$second" -y --history "$H"
expect 0 "$P" sessions --history "$H"
has err "no saved sessions"

# files that are not a history database are refused, untouched
printf 'just text\n%.0s' $(seq 1 300) >"$T/notes.txt"
cp "$T/notes.txt" "$T/notes.orig"
expect 1 "$P" sessions --history "$T/notes.txt"
has err "history is unavailable"
cmp -s "$T/notes.txt" "$T/notes.orig" || fail "a non-database file was modified"
if command -v sqlite3 >/dev/null 2>&1; then
	sqlite3 "$H" "PRAGMA user_version = 42" || fail "sqlite3"
	cp "$H" "$T/newer.orig"
	expect 1 "$P" sessions --history "$H"
	has err "newer palaver"
	cmp -s "$H" "$T/newer.orig" || fail "a newer database was modified"
fi

# history turned off: a clear message, before or after the subcommand
expect 1 "$P" --no-history sessions
has err "history is disabled"
expect 1 "$P" sessions list --no-history
has err "history is disabled"
# the default database is $XDG_DATA_HOME/palaver/history.db
expect 0 env XDG_DATA_HOME="$T/xdg" "$P" sessions
[ -f "$T/xdg/palaver/history.db" ] || fail "no database under \$XDG_DATA_HOME"
# --history before the subcommand (a global flag)
expect 0 "$P" --history "$T/h2.db" sessions show 0123abcd
has out "Tell me more"

[ "$fails" -eq 0 ] || { echo "it_sessions: $fails failure(s)"; exit 1; }
echo "it_sessions: ok"
