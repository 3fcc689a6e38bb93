#!/bin/sh
# The chat on a remote server in a real terminal (tmux): the status pane shows the server, the
# model and the server's context; a reply streams; Esc closes the stream and keeps the words;
# a failure is a message in the chat; each reply is saved with its backend and model.
cd "$(dirname "$0")/.." || exit 1
PALAVER=${PALAVER:-$PWD/build/palaver}
. "$(dirname "$0")/refdata.sh"
need_cmd tmux python3
[ -x "$PALAVER" ] || skip_test "no palaver binary at '$PALAVER'"

T=$(mktemp -d) || exit 1
TUI_SOCK=palaver-it-tui-remote-$$
. tests/tui/lib.sh
mkfifo "$T/srv.in"
python3 tests/remote/server.py --log "$T/srv.log" <"$T/srv.in" >"$T/port" 2>"$T/srv.err" &
srv=$!
exec 9>"$T/srv.in"
cleanup() { tui_stop; exec 9>&-; kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
PORT=$(head -1 "$T/port")
[ -n "$PORT" ] || { echo "FAIL: the test server did not start: $(cat "$T/srv.err")"; exit 1; }
U=http://127.0.0.1:$PORT

ENVS="HOME=$T XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state XDG_DATA_HOME=$T/data LC_ALL=C.UTF-8"
tui_start 110x30 "cd $T && env $ENVS $PALAVER --remote $U/llama/slow/v1 --history $T/history.db"
check "the server answers and the status pane says ready" tui_wait "state +ready" 20
check "the status pane shows the server" tui_wait "127.0.0.1:$PORT/llam" 1
check "the status pane shows the server's model" tui_wait "qwen2.5-0.5b-instruct" 1
check "the backend is remote" tui_wait "remote" 1
check "the context gauge has the server's context" tui_wait "context .* [0-9]+/4096" 1

tui_type "hi"
tui_keys Enter
check "the reply streams" tui_wait "w0 w1 w2" 10
tui_keys Escape
check "Esc stops the reply and keeps it" tui_wait "\[stopped\]" 3
words=$(tui_screen | grep -o 'w[0-9]*' | wc -l)
sleep 0.5
check "nothing more arrives after Esc" sh -c "[ \$(tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -o 'w[0-9]*' | wc -l) -eq $words ]"
tui_keys C-d
check "palaver exits" tui_wait "TUI-EXITED rc=0" 10

# a server that fails mid-reply: the message is in the chat, the words stay
tui_start 110x30 "cd $T && env $ENVS $PALAVER --remote $U/llama/midstream/v1 --history $T/history.db"
check "ready on the second server" tui_wait "state +ready" 20
tui_type "hello"
tui_keys Enter
check "the failure is said in the chat" tui_wait "failed mid-reply:" 10
check "the partial reply stays" tui_wait "Hello!" 1
tui_keys C-d
check "palaver exits" tui_wait "TUI-EXITED rc=0" 10

# both replies were saved with the server and model that wrote them
python3 - "$T/history.db" "$U" >"$T/rows" 2>&1 <<'PY' || fail "cannot read the history: $(cat "$T/rows")"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for row in db.execute("SELECT role, status, backend, model, content FROM messages ORDER BY id"):
    print("|".join("" if v is None else str(v) for v in row))
PY
check "the cancelled reply is saved with its backend and model" \
	grep -q "^assistant|cancelled|remote|$U/llama/slow/v1#qwen2.5-0.5b-instruct-q8_0.gguf|w0 w1 w2" "$T/rows"
check "the failed reply is saved with its partial text" \
	grep -q "^assistant|error|remote|$U/llama/midstream/v1#qwen2.5-0.5b-instruct-q8_0.gguf|Hello!" "$T/rows"

[ $TUI_FAILS -eq 0 ] && echo "it_tui_remote: ok" || echo "it_tui_remote: $TUI_FAILS failure(s)"
[ $TUI_FAILS -eq 0 ]
