#!/bin/sh
# The chat in a real terminal (a detached tmux session): a reply streams with
# speed and context in the status pane, Esc stops it and keeps it, sessions,
# search, /regen, /edit, resizing, Unicode, pastes, and a clean exit.
# Every check asserts on the captured screen; waits poll with a deadline.
cd "$(dirname "$0")/.." || exit 1
PALAVER=${PALAVER:-$PWD/build/palaver}
. tests/refdata.sh
MODEL=$REF/models/stories260K.gguf

need_cmd tmux
need_ref models/stories260K.gguf
[ -x "$PALAVER" ] || skip_test "no palaver binary at '$PALAVER'"

T=$(mktemp -d) || exit 1
TUI_SOCK=palaver-it-tui-$$
. tests/tui/lib.sh
cleanup() { tui_stop; rm -rf "$T"; }
trap cleanup EXIT INT TERM

# The engine must be able to answer at all: a one-shot prompt proves it.
out=$(HOME=$T XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state XDG_DATA_HOME=$T/data \
	"$PALAVER" -m "$MODEL" --chat-template none --no-history -n 4 -p "Once" 2>&1 </dev/null)
case $out in
*"not built"*) skip_test "the engine is not built yet ($out)" ;;
esac
grep -q "the chat is not built yet" "$PALAVER" && skip_test "the chat is not built yet"

ENVS="HOME=$T XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state XDG_DATA_HOME=$T/data LC_ALL=C.UTF-8"
start() {
	tui_start "${1:-100x30}" "cd $T && env $ENVS $PALAVER -m $MODEL --chat-template none -n 40 --ctx 512 --history $T/history.db"
	tui_wait "state +ready" 20 || { fail "the model loads and the status pane says ready"; return 1; }
}

# The left part of the screen (the transcript, input and hint), without
# the status column, whose memory figure may change between captures, and
# the hint line, where a transient message may expire.
left() { tui_screen | cut -c1-69 | sed '$d'; }

# ---- a reply streams; the status pane shows speed and context -----------
start || exit 1
check "the hint under the input says how to send and quit" tui_wait "Enter send.*Ctrl-D quit" 3
tui_send "Once upon a time" || fail "the first reply finishes"
check "the user's message is in the transcript" tui_wait "^  Once upon a time" 1
check "a reply appeared below it" sh -c "[ \$(tmux -L $TUI_SOCK capture-pane -p -t 0 | cut -c1-69 | grep -c '^  [^ ]') -ge 2 ]"
check "the status pane shows generation speed" tui_wait "gen +[0-9.]+ t/s" 3
check "the status pane shows prompt speed and time to first token" tui_wait "TTFT +[0-9.]+ m?s" 1
check "the status pane shows the context used" tui_wait "context .* [0-9]+/[0-9]+" 1
check "the status pane names the session" tui_wait "session +Once upon a time" 3

# ---- Esc while streaming stops the reply and keeps it -------------------
# On an idle machine stories260K writes thousands of tokens a second: a
# 40-token reply is over before the Esc arrives, so let this one run until
# the context is full (hundreds of tokens) and put the cap back after.
tui_type "/set max_tokens -1"; tui_keys Enter
tui_wait "max_tokens = -1" 3 || fail "/set max_tokens -1 for the Esc check"
stopped=0
for attempt in 1 2 3 4 5; do
	tui_type "Once upon a time there was a dragon who"
	tui_keys Enter Escape
	# the input empties when the message is taken; then the reply ends
	tui_wait_gone "^› Once upon a time there was a dragon" 10
	if tui_wait "\[stopped\]" 10; then stopped=1; break; fi
	tui_wait "Enter send" 30
done
[ $stopped = 1 ] && ok "Esc mid-reply stops it and the partial reply stays, marked [stopped]" \
	|| fail "Esc mid-reply leaves a [stopped] reply (5 attempts)"
tui_wait "Enter send" 30
tui_type "/set max_tokens 40"; tui_keys Enter
tui_wait "max_tokens = 40" 3 || fail "/set max_tokens 40 after the Esc check"

# ---- Ctrl-C at an empty prompt says how to quit -------------------------
# (idle first; the first Ctrl-C clears an input left by a refused Enter)
tui_wait_gone "typing is kept for later" 30
tui_keys C-c C-c
check "Ctrl-C at an empty prompt says how to quit" tui_wait "to quit, press Ctrl-D" 3

# ---- Unicode through input, transcript and history ----------------------
tui_type "/new Unicode"; tui_keys Enter
check "/new starts an empty session with its title" tui_wait "session +Unicode" 3
check "/new clears the transcript" tui_wait_gone "^  Once upon a time" 3
tui_type "héllo 世界 🙂"
check "wide characters echo in the input" tui_wait "^› héllo 世界 🙂" 3
tui_keys Enter
tui_wait "Enter send" 30
check "wide characters reach the transcript intact" tui_wait "^  héllo 世界 🙂( |$)" 3

# ---- /regen and /edit ----------------------------------------------------
tui_type "/regen"; tui_keys Enter
tui_wait_gone "^› /regen" 3
tui_wait "Enter send" 30
check "/regen replaces the reply (one reply under the message)" \
	sh -c "[ \$(tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -c '^you') -eq 1 ]"
check "/regen reuses the cached prompt" tui_wait "reused +[1-9][0-9]* tokens" 3
tui_type "/edit"; tui_keys Enter
check "/edit puts the last message back in the input" tui_wait "^› héllo 世界 🙂" 3
check "/edit takes the message out of the transcript" tui_wait_gone "^  héllo 世界 🙂" 3
tui_keys Enter
tui_wait "Enter send" 30
check "the edited message is sent again" tui_wait "^  héllo 世界 🙂" 3

# ---- Alt-Enter and Ctrl-J insert newlines; Ctrl-C clears the input ----------
tui_type "line a"; tui_keys M-Enter; tui_type "line b"; tui_keys C-j; tui_type "line c"
check "Alt-Enter and Ctrl-J make a multi-line input" tui_wait "^· line c" 3
check "... all lines shown" sh -c "tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -q '^› line a' && tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -q '^· line b'"
tui_keys C-c
check "Ctrl-C at an idle prompt clears the input" tui_wait_gone "^· line" 3

# ---- /copy puts the last reply on the clipboard (OSC 52) -----------------
tui_tmux set-option -s set-clipboard on
tui_tmux delete-buffer 2>/dev/null
tui_type "/copy"; tui_keys Enter
check "/copy says it copied" tui_wait "copied the last reply" 3
check "/copy reaches the terminal's clipboard" sh -c "[ -n \"\$(tmux -L $TUI_SOCK show-buffer 2>/dev/null)\" ]"

# ---- /sessions and /search -----------------------------------------------
tui_type "/sessions"; tui_keys Enter
check "/sessions lists the sessions" tui_wait "Sessions +\([0-9]+\)" 3
check "the list holds both sessions" sh -c "tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -q 'Unicode' && tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -q 'Once upon a time'"
tui_type "/"; tui_type "once"
check "/ filters the list" tui_wait "filter: once" 3
check "the filter hides the other session" tui_wait_gone "^ (▶| ) Unicode" 3
tui_keys Enter Enter
check "Enter opens the chosen session" tui_wait "session +Once upon a time" 3
check "the opened session's messages are shown" tui_wait "^  Once upon a time" 3
tui_type "/search 世界"; tui_keys Enter
check "/search shows the hits" tui_wait "Search: 世界 +\([1-9][0-9]*\)" 3
check "the hit's snippet is shown" tui_wait "user: héllo 世界" 3
tui_keys Enter
check "Enter on a hit opens its session" tui_wait "session +Unicode" 3
check "... scrolled to the hit" tui_wait "^  héllo 世界 🙂" 3
ESC=$(printf '\033')
check "... with the words searched for highlighted" sh -c \
	"tmux -L $TUI_SOCK capture-pane -e -p -t 0 | grep -Eq '^  héllo (${ESC}\[[0-9;]*m)+世界'"
tui_type "/sesions"; tui_keys Enter
check "an unknown command gets a suggestion" tui_wait "Did you mean /sessions" 3

# ---- /rename, /set, /export ----------------------------------------------
tui_type "/rename Wide chars"; tui_keys Enter
check "/rename renames the session" tui_wait "session +Wide chars" 3
tui_type "/set temperature 0.5"; tui_keys Enter
check "/set changes a setting" tui_wait "temperature = 0.5" 3
tui_type "/set"; tui_keys Enter
check "/set lists the settings" tui_wait "^temperature +0.5" 3
tui_type "/export $T/export.md"; tui_keys Enter
check "/export writes the session" tui_wait "Wrote the session" 3
check "... as Markdown with the messages" grep -q "héllo 世界 🙂" "$T/export.md"

# ---- resizing mid-session leaves no stray characters ---------------------
tui_wait_stable 5
before=$(left)
tui_tmux resize-window -t 0 -x 60 -y 20
check "at 60 columns the status pane becomes a bar" tui_wait_gone "│" 5
check "the hint line fits 60 columns, quitting included" tui_wait "^ Enter send.*Ctrl-D quit" 3
check "the bar shows the context" tui_wait "· ctx [0-9]+/[0-9]+" 3
tui_tmux resize-window -t 0 -x 100 -y 30
tui_wait "│ .*state" 5
tui_wait_stable 5
after=$(left)
if [ "$before" = "$after" ]; then ok "resizing to 60x20 and back redraws the same screen"
else
	fail "resizing to 60x20 and back redraws the same screen"
	printf '%s\n' "$before" > "$T/before"; printf '%s\n' "$after" > "$T/after"
	diff "$T/before" "$T/after"
fi

tui_keys C-l
tui_wait_stable 5
if [ "$(left)" = "$after" ]; then ok "Ctrl-L redraws the same screen"
else fail "Ctrl-L redraws the same screen"; fi

# ---- resizing while a reply streams ---------------------------------------
tui_type "Once upon a time there was a king"; tui_keys Enter
tui_tmux resize-window -t 0 -x 60 -y 20
tui_tmux resize-window -t 0 -x 100 -y 30
tui_wait_gone "^› Once upon a time there was a king" 10
tui_wait "Enter send" 30
tui_wait_stable 5
during=$(left)
tui_tmux resize-window -t 0 -x 60 -y 20
tui_wait_gone "│" 5
tui_tmux resize-window -t 0 -x 100 -y 30
tui_wait "│ .*state" 5
tui_wait_stable 5
if [ "$during" = "$(left)" ]; then ok "resizing mid-reply leaves the same screen as a fresh redraw"
else fail "resizing mid-reply leaves the same screen as a fresh redraw"; fi

# ---- a paste is text, even when a line of it is /quit --------------------
printf 'pasted line one\n/quit\npasted line three' > "$T/paste.txt"
tui_tmux load-buffer "$T/paste.txt"
tui_tmux paste-buffer -p -t 0
check "the paste lands in the input, several lines" tui_wait "^· /quit" 3
tui_keys Enter
tui_wait "Enter send" 30
check "the pasted /quit did not quit" sh -c "! tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -q TUI-EXITED"
check "the pasted /quit was sent as a message" tui_wait "^  /quit" 3

# ---- Ctrl-D quits and restores the terminal ------------------------------
tui_keys C-d
check "Ctrl-D on an empty line quits with status 0" tui_wait "TUI-EXITED rc=0" 5
check "the alternate screen is left" sh -c "[ \"\$(tmux -L $TUI_SOCK display -p -t 0 '#{alternate_on}')\" = 0 ]"
check "mouse reporting is off" sh -c "[ \"\$(tmux -L $TUI_SOCK display -p -t 0 '#{mouse_any_flag}#{mouse_sgr_flag}')\" = 00 ]"
check "the cursor is visible" sh -c "[ \"\$(tmux -L $TUI_SOCK display -p -t 0 '#{cursor_flag}')\" = 1 ]"
check "the input history keeps wide characters" grep -q "héllo 世界 🙂" "$T/state/palaver/input_history"
check "the history database keeps wide characters" sh -c \
	"env $ENVS $PALAVER sessions search 世界 --history $T/history.db | grep -q 'héllo'"

# ---- --session resumes a saved chat; the picker deletes with confirmation --
# (the context as before: a saved KV cache is kept per context layout)
tui_start 100x30 "cd $T && env $ENVS $PALAVER -m $MODEL --chat-template none -n 8 --ctx 512 --history $T/history.db --session Wide"
check "--session opens a saved chat by the start of its title" tui_wait "session +Wide chars" 10
check "... with its messages" tui_wait "^  héllo 世界 🙂" 3
check "each reply saved the session's KV cache" sh -c "ls $T/.cache/palaver/kv/*-*.kv >/dev/null 2>&1"
tui_type "and then"; tui_keys Enter
check "the next reply reads it instead of the whole chat" tui_wait "resumed from the saved KV cache: [0-9]+ tokens" 30
tui_wait "Enter send" 30
tui_type "/sessions"; tui_keys Enter
tui_wait "Sessions +\(2\)" 3 || fail "two sessions are listed"
tui_keys d
check "d asks before deleting" tui_wait "delete this session\? y = yes" 3
tui_keys n
check "any other key keeps it" tui_wait "Sessions +\(2\)" 3
tui_keys d y
check "y deletes it" tui_wait "Sessions +\(1\)" 3
tui_keys Escape
check "Esc closes the list" tui_wait_gone "Sessions +\(" 3
tui_keys C-d
tui_wait "TUI-EXITED rc=0" 5

# ---- SIGTERM restores the terminal too -----------------------------------
start || exit 1
pane_pid=$(tui_tmux display -p -t 0 '#{pane_pid}')
pid=$(pgrep -P "$pane_pid" -x "$(basename "$PALAVER")" | head -1)
[ -n "$pid" ] && kill -TERM "$pid"
check "SIGTERM ends the chat" tui_wait "TUI-EXITED" 5
check "... and leaves the alternate screen" sh -c "[ \"\$(tmux -L $TUI_SOCK display -p -t 0 '#{alternate_on}')\" = 0 ]"

# ---- no model configured: the chat opens and says how to set one ---------
# (PALAVER_MODEL set to nothing: no model, not even the built-in palaver-tiny)
tui_start 100x30 "cd $T && env $ENVS PALAVER_MODEL= $PALAVER --chat-template none -n 40 --ctx 512 --history $T/history.db"
check "without a model the chat opens and says how to set one" tui_wait "No model is configured" 5
check "... naming -m and config.yaml" tui_wait "-m FILE.gguf, set model:" 1
check "... and the status pane says so" tui_wait "state +no model" 3
tui_send "hello" 10
check "a message without a model gets the same advice" tui_wait "No model is loaded" 3
tui_type "/model $MODEL"; tui_keys Enter
check "/model FILE loads a model" tui_wait "state +ready" 20
tui_send "Once upon a time" || fail "a reply after /model"
check "... which then answers" tui_wait "gen +[0-9.]+ t/s" 3
tui_keys C-d
check "... and Ctrl-D still quits" tui_wait "TUI-EXITED rc=0" 5

# ---- no model named: palaver-tiny, the built-in model, answers ----------
tui_start 100x30 "cd $T && env $ENVS $PALAVER -n 60 --history $T/history.db"
check "without -m the chat opens with palaver-tiny and says what it is" tui_wait "This is palaver-tiny" 5
check "... and loads it" tui_wait "state +ready" 20
tui_send "how do I search my old chats?" || fail "palaver-tiny's reply finishes"
check "... which answers a question about palaver with the command" tui_wait "^  .*/search" 3
tui_keys C-d
tui_wait "TUI-EXITED rc=0" 5

# ---- a history that cannot be opened: the chat goes on in memory ----------
: > "$T/not-a-dir"
tui_start 100x30 "cd $T && env $ENVS $PALAVER -m $MODEL --chat-template none -n 8 --history $T/not-a-dir/h.db"
check "a history that cannot be opened is reported" tui_wait "history is unavailable" 10
check "... in the status pane too" tui_wait "history unavailable" 3
tui_send "Once upon a time" || fail "the reply finishes without a history"
check "... and the chat works in memory" tui_wait "^  Once upon a time" 3
tui_keys C-d
tui_wait "TUI-EXITED rc=0" 5

# ---- a "C" locale still draws (and reads) UTF-8 ------------------------------
tui_start 100x30 "cd $T && env $ENVS LC_ALL=C LANG= $PALAVER -m $MODEL --chat-template none -n 8 --no-history"
check "under LC_ALL=C the chat still draws its rules and borders" tui_wait "^──.*│|│ .*state +ready" 20
tui_type "héllo 世界"
check "... and wide characters echo in the input" tui_wait "^› héllo 世界" 3
tui_keys C-c C-d
tui_wait "TUI-EXITED rc=0" 5

# ---- Ctrl-Z suspends to the shell, fg comes back ----------------------------
if command -v bash >/dev/null 2>&1; then
	tui_start_raw 100x30 "env $ENVS PS1='SHELL\$ ' bash --norc -i"
	tui_wait 'SHELL\$' 5
	tui_type "$PALAVER -m $MODEL --chat-template none -n 8 --no-history"; tui_keys Enter
	tui_wait "state +ready" 20
	tui_type "draft text"
	tui_keys C-z
	check "Ctrl-Z gives the shell back" tui_wait "Stopped" 5
	check "... with the alternate screen left" sh -c "[ \"\$(tmux -L $TUI_SOCK display -p -t 0 '#{alternate_on}')\" = 0 ]"
	tui_type "fg"; tui_keys Enter
	check "fg brings the chat back, input intact" tui_wait "^› draft text" 5
	tui_keys C-c C-d
	check "... and it still quits cleanly" tui_wait 'SHELL\$ *$' 5
fi

# ---- SIGHUP (the terminal closing) restores it as well ---------------------
start || exit 1
pane_pid=$(tui_tmux display -p -t 0 '#{pane_pid}')
pid=$(pgrep -P "$pane_pid" -x "$(basename "$PALAVER")" | head -1)
[ -n "$pid" ] && kill -HUP "$pid"
check "SIGHUP ends the chat" tui_wait "TUI-EXITED" 5
check "... and leaves the alternate screen" sh -c "[ \"\$(tmux -L $TUI_SOCK display -p -t 0 '#{alternate_on}')\" = 0 ]"

tui_stop
if [ "$TUI_FAILS" -ne 0 ]; then
	echo "it_tui: $TUI_FAILS check(s) failed"
	exit 1
fi
echo "it_tui: ok"
