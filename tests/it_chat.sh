#!/bin/sh
# The chat bugs of issue 17, each driven in a real terminal (tmux): --session
# loads the session's model, a failed /model keeps the working one, replies
# keep the name of the model that wrote them, /help pages at 80x24, the
# context notices say what happened and when, /set checks config.yaml's
# ranges, /export writes what `sessions export` writes, Tab completes file
# names, and hints about a reply in progress go when it ends.
cd "$(dirname "$0")/.." || exit 1
PALAVER=${PALAVER:-$PWD/build/palaver}
. tests/refdata.sh
MODELS=$REF/models
MODEL=$MODELS/stories260K.gguf
MODEL2=$MODELS/rand-llama-256-Q8_0.gguf

need_cmd tmux
need_ref models/stories260K.gguf models/rand-llama-256-Q8_0.gguf
[ -x "$PALAVER" ] || skip_test "no palaver binary at '$PALAVER'"

T=$(mktemp -d) || exit 1
TUI_SOCK=palaver-it-chat-$$
. tests/tui/lib.sh
cleanup() { tui_stop; rm -rf "$T"; }
trap cleanup EXIT INT TERM

ENVS="HOME=$T XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state XDG_DATA_HOME=$T/data LC_ALL=C.UTF-8"
H=$T/history.db
EXTRA=
# chat SIZE ARGS...: the chat on the test history, waiting for a ready model
chat() {
	size=$1; shift
	tui_start "$size" "cd $T && env $ENVS $EXTRA $PALAVER --chat-template none --history $H $*"
}
ready() { tui_wait "ready" 20 || { fail "the model loads"; return 1; }; }
idle() { tui_wait "Enter send" 30; }
quit() { tui_keys C-d; tui_wait "TUI-EXITED" 10; }
# says REGEX: the transcript (left of the status column), lines joined, matches
says() { tui_screen | cut -c1-69 | tr '\n' ' ' | tr -s ' ' | grep -Eq -- "$1"; }
pal() { env HOME="$T" XDG_CONFIG_HOME="$T/config" XDG_STATE_HOME="$T/state" XDG_DATA_HOME="$T/data" "$PALAVER" "$@"; }

# ---- bug 1: --session opens with the session's model -----------------------
cp "$MODEL" "$T/copy.gguf"
pal -m "$T/copy.gguf" --chat-template none --history "$H" -n 8 -p "Once upon a time" >/dev/null 2>"$T/err" ||
	{ cat "$T/err"; fail "a batch run makes a session"; }
sid=$(sed -n 's/^palaver: session //p' "$T/err")
chat 100x30 --session "$sid"
check "--session with no model configured loads the session's model" tui_wait "ready" 20
tui_type "and then"; tui_keys Enter
idle
check "... a reply to the resumed session, headed with the model's name" sh -c "[ \$(tmux -L $TUI_SOCK capture-pane -p -t 0 | cut -c1-69 | grep -c '^copy') -ge 2 ]"
quit
rm -f "$T/copy.gguf"
chat 100x30 --session "$sid"
tui_wait "replies now come" 10
check "a session whose model file is gone says so" says "copy.gguf', which cannot be read: No such file or directory"
check "... and loads palaver-tiny instead, naming it" says "replies now come from palaver-tiny, the built-in model"
tui_wait "ready" 30
quit

# ---- bug 2: a failed /model keeps the working model ------------------------
chat 100x30 -m "$MODEL" -n 16 --ctx 512
ready || exit 1
printf 'not a model at all' >"$T/bad.gguf"
tui_type "/model $T/bad.gguf"; tui_keys Enter
check "a /model that fails says why" tui_wait "Cannot load the model: .*bad.gguf" 10
check "... and that the old model is still in use" tui_wait "llama is still the model in use" 3
# a bug report has the story in the log: the loads and the failure
check "the log records the model loads and the failure" sh -c "grep -q \"chat: model '.*stories260K.gguf' ready\" $T/state/palaver/palaver.log && grep -q \"chat: cannot load '.*bad.gguf'\" $T/state/palaver/palaver.log"
check "... the status pane says ready" tui_wait "llama · ready|state +ready" 3
tui_type "Once upon a time"; tui_keys Enter
idle
check "... and the next message gets a reply" sh -c "[ \$(tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -c '^stories260K') -ge 1 ]"
check "... not 'No model is loaded'" tui_wait_gone "No model is loaded" 1

# ---- bug 3: replies keep the name of the model that wrote them --------------
tui_type "/model $MODEL2"; tui_keys Enter
check "/model loads another model" tui_wait "random-llama-256x2 · ready|state +ready" 20
tui_type "/clear"; tui_keys Enter
tui_type "/export $T/before.md"; tui_keys Enter
tui_wait "Wrote the session" 5
tui_type "Hello"; tui_keys Enter
idle
tui_type "/export $T/both.md"; tui_keys Enter
tui_wait "Wrote the session" 5
grep -q "^## Assistant (stories260K)" "$T/both.md" && grep -q "^## Assistant (rand-llama-256-Q8_0)" "$T/both.md" &&
	ok "/export heads each reply with the model that wrote it" ||
	{ cat "$T/both.md"; fail "/export heads each reply with the model that wrote it"; }
sid2=$(sed -n 's/^- session: //p' "$T/both.md")
pal sessions --history "$H" export "$sid2" >"$T/cli.md"
cmp -s "$T/both.md" "$T/cli.md" && ok "/export writes what 'sessions export' writes" ||
	{ diff "$T/both.md" "$T/cli.md"; fail "/export writes what 'sessions export' writes"; }
quit
chat 100x40 -m "$MODEL" --session "$sid2"
ready
check "a reopened session shows the first reply under its own model" tui_wait "^stories260K" 3
check "... and the second under the other" tui_wait "^rand-llama-256-Q8_0" 3
quit

# ---- bug 4: /help pages at 80x24 -----------------------------------------
chat 80x24 -m "$MODEL" -n 16
ready
tui_type "/help"; tui_keys Enter
check "/help at 80x24 shows its first line" tui_wait "^Commands \(Tab completes\):" 3
check "... the common commands first" tui_wait "^  /help" 1
check "... and says there is more below" tui_wait "more lines below" 1
tui_keys PageDown
check "PgDn pages on, with a cue for what is above" tui_wait "more lines above" 3
tui_keys PageDown
check "... and on to the rest" tui_wait "A line starting with //" 3
quit

# ---- bug 5: the context notices --------------------------------------------
EXTRA=PALAVER_CONTEXT_OVERFLOW=drop-oldest
chat 100x40 -m "$MODEL" -n -1 --ctx 64
ready
tui_type "Once upon a time"; tui_keys Enter
idle
check "a reply that fills the context says so" tui_wait "filled the context of 64 tokens" 3
check "... and that drop-oldest makes room for the next message" tui_wait "oldest turns are" 3
check "... not to set what is already set" tui_wait_gone "context_overflow in config.yaml can drop" 1
tui_type "The end"; tui_keys Enter
idle
tui_screen >"$T/screen"
notice=$(grep -n "no longer fit" "$T/screen" | head -1 | cut -d: -f1)
reply=$(grep -n "^stories260K" "$T/screen" | tail -1 | cut -d: -f1)
[ -n "$notice" ] && [ -n "$reply" ] && [ "$notice" -lt "$reply" ] &&
	ok "the 'old turns no longer fit' notice comes before the reply it applies to" ||
	{ cat "$T/screen"; fail "the 'old turns no longer fit' notice comes before the reply it applies to"; }
quit
EXTRA=PALAVER_CONTEXT_OVERFLOW=stop
chat 100x40 -m "$MODEL" -n -1 --ctx 64
ready
tui_type "Once upon a time"; tui_keys Enter
idle
check "with 'stop' the notice names the other policies" tui_wait "drop-oldest\s*$|drop-oldest leaves out" 3
quit

EXTRA=
# ---- bug 6: /set checks config.yaml's ranges -------------------------------
chat 100x30 -m "$MODEL" -n 16
ready
tui_type "/set temperature 1e308"; tui_keys Enter
check "/set refuses what config.yaml refuses" tui_wait "'sampling.temperature' must be between 0 and 10, not 1e308" 3
tui_type "/set repeat_last_n -1"; tui_keys Enter
check "/set takes what config.yaml takes" tui_wait "repeat_last_n = -1" 3
tui_type "/set max_tokens 1073741823"; tui_keys Enter
check "/set max_tokens has the table's bound" tui_wait "'sampling.max_tokens' must be between -1 and" 3

# ---- bug 8: Tab completes file names; hints do not go stale ----------------
mkdir -p "$T/mdl" && cp "$MODEL" "$T/mdl/only-one.gguf" && : >"$T/mdl/readme.txt"
tui_type "/model $T/mdl/o"; tui_keys Tab
check "Tab completes a model file name" tui_wait "^› /model $T/mdl/only-one.gguf" 3
tui_keys C-c
tui_type "/export $T/mdl/r"; tui_keys Tab
check "Tab completes an export file name" tui_wait "^› /export $T/mdl/readme.txt" 3
tui_keys C-c
tui_type "/set max_tokens -1"; tui_keys Enter
tui_wait "max_tokens = -1" 3
tui_type "Once upon a time there was"; tui_keys Enter
tui_type "/new"; tui_keys Enter
if tui_wait "a reply is streaming" 5; then
	tui_keys Escape
	idle
	check "a hint about a streaming reply goes when the reply ends" tui_wait_gone "a reply is streaming" 2
else
	ok "a hint about a streaming reply goes when the reply ends (the reply ended first)"
fi
quit

[ "$TUI_FAILS" -eq 0 ] && echo "it_chat: ok" || { echo "it_chat: $TUI_FAILS failed"; exit 1; }
