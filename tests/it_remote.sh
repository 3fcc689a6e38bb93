#!/bin/sh
# A remote server through the real binary: batch replies and exit codes, SIGINT, history and
# --session, `palaver models`, and the API key kept out of config output, history and log.
P=${PALAVER:-./palaver}
. "$(dirname "$0")/refdata.sh"
need_cmd python3
T=$(mktemp -d /tmp/palaver-it-remote.XXXXXX) || exit 1
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data" XDG_STATE_HOME="$T/state"
unset PALAVER_MODEL PALAVER_HISTORY_PATH PALAVER_REMOTE_URL PALAVER_REMOTE_MODEL \
	PALAVER_REMOTE_API_KEY_ENV PALAVER_REMOTE_TIMEOUT PALAVER_REMOTE_RETRIES
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# the loopback server lives while its stdin (a fifo we hold open) does
mkfifo "$T/srv.in"
python3 "$(dirname "$0")/remote/server.py" --log "$T/srv.log" <"$T/srv.in" >"$T/port" 2>"$T/srv.err" &
srv=$!
exec 9>"$T/srv.in"
trap 'exec 9>&-; kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$T"' EXIT
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
PORT=$(head -1 "$T/port")
[ -n "$PORT" ] || { echo "FAIL: the test server did not start: $(cat "$T/srv.err")"; exit 1; }
U=http://127.0.0.1:$PORT
HELLO='Hello! ☕ How can I help?'

# run STATUS CMD...: stdout in $T/out, stderr in $T/err
run() {
	want=$1; shift
	"$@" </dev/null >"$T/out" 2>"$T/err"; got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, wanted $want: $(head -c 600 "$T/err")"
}
has() { grep -q -F -- "$2" "$T/$1" || fail "$1 lacks '$2': $(head -c 600 "$T/$1")"; }

# 1. each server's stream: the reply alone on stdout, nothing on stderr
for f in llama ollama vllm; do
	run 0 "$P" --no-history --remote "$U/$f/v1" -p hi
	[ "$(cat "$T/out")" = "$HELLO" ] || fail "$f: stdout is '$(cat "$T/out")'"
	[ -s "$T/err" ] && fail "$f: stderr not empty: $(cat "$T/err")"
done
run 0 "$P" --no-history --remote "$U/vllm/v1" --json -p hi
has out '"reply":"Hello! ☕ How can I help?","stop_reason":"eos","prompt_tokens":30'
has out '"gen_tokens":8'
# PALAVER_REMOTE_URL and the config file work as the flag does
PALAVER_REMOTE_URL="$U/ollama/v1" run 0 "$P" --no-history -p hi
[ "$(cat "$T/out")" = "$HELLO" ] || fail "PALAVER_REMOTE_URL: stdout is '$(cat "$T/out")'"

# 2. failures: one line on stderr, exit 1, the partial reply on stdout
run 1 "$P" --no-history --remote "$U/llama/reset/v1" -p hi
has err "palaver: the connection to '$U/llama/reset/v1' broke mid-reply"
[ "$(cat "$T/out")" = "Hello! ☕" ] || fail "reset: stdout is '$(cat "$T/out")'"
run 1 "$P" --no-history --remote "$U/llama/e401/v1" -p hi
has err "refused the request (HTTP 401): Invalid API Key"
run 1 "$P" --no-history --remote "$U/llama/e500/v1" --remote-model qwen2.5-0.5b-instruct-q8_0.gguf -p hi
has err "failed (HTTP 500)"
run 1 "$P" --no-history --remote "$U/ollama/v1" --remote-model nope -p hi
has err "has no model 'nope'; it has 'llama3.2:latest', 'qwen2.5:7b'"
PALAVER_REMOTE_TIMEOUT=1 run 1 "$P" --no-history --remote "$U/llama/silentchat/v1" -p hi
has err "no answer from '$U/llama/silentchat/v1' in 1 s (remote.timeout)"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "a failure is one line: $(cat "$T/err")"
run 2 "$P" --no-history --remote ftp://example.com -p hi
has err "'remote.url' must be an http:// or https:// URL, not 'ftp://example.com'"

# 3. SIGINT cancels the reply: what came is printed, exit 130, quickly
"$P" --no-history --remote "$U/llama/slow/v1" -p hi </dev/null >"$T/out" 2>"$T/err" &
pid=$!
sleep 1
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] || fail "SIGINT: exit $rc, wanted 130: $(cat "$T/err")"
grep -q '^w0 w1 ' "$T/out" || fail "SIGINT: the partial reply is missing: '$(cat "$T/out")'"

# 4. history: the reply and its model are saved; --session continues on the server
H="$T/hist.db"
MYKEY=sk-secret-4242 PALAVER_REMOTE_API_KEY_ENV=MYKEY run 0 "$P" --history "$H" --remote "$U/vllm/v1" -p hi
sid=$(sed -n 's/^palaver: session \([0-9a-f]*\)$/\1/p' "$T/err")
[ -n "$sid" ] || fail "no session id on stderr: $(cat "$T/err")"
run 0 "$P" --history "$H" sessions show "$sid"
has out "model: $U/vllm/v1#Qwen/Qwen2.5-7B-Instruct"
has out "$HELLO"
grep -q 'Bearer sk-secret-4242' "$T/srv.log" || fail "the server did not get the API key"
# a resumed session finds its server without --remote
run 0 "$P" --history "$H" --session "$sid" -p again
[ "$(cat "$T/out")" = "$HELLO" ] || fail "--session: stdout is '$(cat "$T/out")'"
tail -1 "$T/srv.log" | grep -q '"content": "again"' || fail "--session did not send the new turn"
tail -1 "$T/srv.log" | grep -q '"role": "assistant", "content": "Hello' ||
	fail "--session did not send the earlier reply"
run 0 "$P" sessions list --history "$H"
has out "hi"
# each reply is saved with the backend and model that wrote it
python3 -c 'import sqlite3, sys
for r in sqlite3.connect(sys.argv[1]).execute("SELECT role, backend, model FROM messages ORDER BY id"):
    print("|".join("" if v is None else v for v in r))' "$H" >"$T/rows"
[ "$(grep -c "^assistant|remote|$U/vllm/v1#Qwen/Qwen2.5-7B-Instruct$" "$T/rows")" -eq 2 ] ||
	fail "replies are not saved with their model: $(cat "$T/rows")"
grep -q '^user||$' "$T/rows" || fail "a user turn has a model: $(cat "$T/rows")"

# 5. the key is never shown or stored
MYKEY=sk-secret-4242 PALAVER_REMOTE_API_KEY_ENV=MYKEY run 0 "$P" --remote "$U/vllm/v1" config
has out 'api_key_env: "MYKEY"'
grep -q -r 'sk-secret-4242' "$T/out" "$H" "$T/state" 2>/dev/null &&
	fail "the API key appears in the config output, the history or the log"
MYKEY=sk-secret-4242 PALAVER_REMOTE_API_KEY_ENV=MYKEY run 0 "$P" --log-level trace \
	--no-history --remote "$U/vllm/v1" -p hi
grep -q -r 'sk-secret-4242' "$T/state" && fail "the API key appears in a trace log"

# 6. palaver models
run 0 "$P" models --remote "$U/ollama/v1"
[ "$(cat "$T/out")" = "llama3.2:latest
qwen2.5:7b" ] || fail "models: '$(cat "$T/out")'"
run 0 "$P" --remote "$U/vllm/v1" models --json
has out '{"id":"Qwen/Qwen2.5-7B-Instruct","owned_by":"vllm","context":32768}'
run 2 "$P" models
has err "no server given"
run 1 "$P" models --remote "$U/llama/e401/v1"
has err "HTTP 401"
# a server's names are untrusted (palaver drops their C0 controls): on a
# terminal (script(1) gives a pty) a C1 CSI shows as U+FFFD, into a pipe
# the bytes stay
CSI=$(printf '\302\233')
if command -v script >/dev/null 2>&1; then
	script -qec "$P models --remote $U/vllm/escmodels/v1" /dev/null </dev/null >"$T/tty" 2>&1
	grep -q "$CSI" "$T/tty" && fail "models wrote a C1 control to the terminal: $(od -c "$T/tty" | head -3)"
	has tty "$(printf 'evil\357\277\27531mname')"
fi
run 0 "$P" models --remote "$U/vllm/escmodels/v1"
grep -q "$CSI" "$T/out" || fail "models into a pipe lost the name's bytes: $(od -c "$T/out" | head -3)"

[ $fails -eq 0 ] && echo "it_remote: ok" || echo "it_remote: $fails failure(s)"
[ $fails -eq 0 ]
