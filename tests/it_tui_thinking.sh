#!/bin/sh
# A reasoning reply in the chat (tmux): the thinking streams dimmed under a
# live "thinking... N tokens" line and collapses to one line when the answer
# starts or the reply ends; Ctrl-T and /think show|hide|collapse change how
# it shows; Esc while it thinks makes the model answer; /think on|off; the
# history and /export keep it apart.  The model is stories260K under a
# template that opens the thinking block (DeepSeek-R1's way).  Last, a
# template the interpreter refuses: its format renders, said once.
cd "$(dirname "$0")/.." || exit 1
PALAVER=${PALAVER:-$PWD/build/palaver}
. tests/refdata.sh
MODEL=$REF/models/stories260K.gguf

need_cmd tmux
need_ref models/stories260K.gguf
[ -x "$PALAVER" ] || skip_test "no palaver binary at '$PALAVER'"

T=$(mktemp -d) || exit 1
TUI_SOCK=palaver-it-think-$$
. tests/tui/lib.sh
cleanup() { tui_stop; rm -rf "$T"; }
trap cleanup EXIT INT TERM
printf '%s' '{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}<think>
{% endif %}' >"$T/opens.jinja"

ENVS="HOME=$T XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state XDG_DATA_HOME=$T/data LC_ALL=C.UTF-8"
tui_start 100x40 "cd $T && env $ENVS $PALAVER -m $MODEL --chat-template $T/opens.jinja -n 24 --temp 0 --ctx 2048 --history $T/history.db"
tui_wait "state +ready" 20 || { fail "the model loads"; exit 1; }
left() { tui_screen | cut -c1-69; }

# ---- a reply that only thinks: collapsed to its line when it ends --------
tui_type "Once upon a time"; tui_keys Enter
check "the reply ends" tui_wait "Enter send" 30
check "the thinking collapses to one line with its figures" \
	tui_wait "▸ thought for [0-9.]+ s \([0-9]+ tokens\)" 3
check "the collapsed thinking's text is not shown" sh -c "! tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -q 'little girl'"

# ---- Ctrl-T and /think show|hide|collapse ----------------------------------
tui_keys C-t
check "Ctrl-T shows the thinking" tui_wait "▾ thought for" 3
check "... its text under the line" tui_wait "^  [A-Z][a-z]+ .*" 3
check "... and says so" tui_wait "thinking: show" 3
tui_keys C-t
check "Ctrl-T again hides it" tui_wait "thinking: hide" 3
tui_keys C-t
check "and once more collapses it" tui_wait "thinking: collapse" 3
tui_type "/think show"; tui_keys Enter
check "/think show opens it" tui_wait "▾ thought for" 3
tui_type "/think collapse"; tui_keys Enter
check "/think collapse folds it" tui_wait "▸ thought for" 3
tui_type "/think"; tui_keys Enter
check "/think alone says the state" tui_wait "Thinking: auto" 3
tui_type "/think on"; tui_keys Enter
check "/think on with a template that does not switch thinking says so" \
	tui_wait "does not switch thinking" 3
tui_type "/think sideways"; tui_keys Enter
check "/think with a bad word is refused, naming it" tui_wait "not 'sideways'" 3

# ---- a long reply: the live line, then Esc makes the model answer ---------
tui_type "/set max_tokens -1"; tui_keys Enter
tui_wait "max_tokens = -1" 3 || fail "/set max_tokens -1"
answered=0
for attempt in 1 2 3 4 5; do
	tui_type "/new attempt $attempt"; tui_keys Enter
	tui_wait "session +attempt $attempt" 5
	tui_type "Once upon a time there was a dragon"; tui_keys Enter
	if tui_wait "thinking… [0-9]+ tokens?, [0-9.]+ s" 10; then
		live=1
		tui_keys Escape
		# the answer follows under the collapsed line; let it end (a fast
		# machine writes a screenful between two looks, so the line is
		# looked for afterwards, scrolling back to it)
		tui_wait "Enter send" 60
		if tui_scroll_to "▸ thought for"; then
			answered=1
			break
		fi
		tui_keys End
		continue
	fi
	tui_wait "Enter send" 60
done
[ "${live:-0}" = 1 ] && ok "the thinking streams under a live 'thinking… N tokens, T s' line" \
	|| fail "no live thinking line seen (5 attempts)"
[ $answered = 1 ] && ok "Esc while it thinks ends the thinking: the line collapses and the answer follows" \
	|| fail "Esc during thinking did not lead to an answer (5 attempts)"
check "the answer is in the transcript, under the collapsed line" \
	sh -c "tmux -L $TUI_SOCK capture-pane -p -t 0 | grep -A3 '▸ thought for' | grep -q '^  [^ ]'"
tui_keys End

# ---- the export keeps the thinking apart ----------------------------------
tui_type "/export $T/chat.md"; tui_keys Enter
check "/export writes the file" tui_wait "Wrote the session" 5
grep -q "<details>" "$T/chat.md" && ok "the export holds the thinking in <details>" \
	|| fail "the export has no <details>: $(head -c 300 "$T/chat.md")"
tui_keys C-d
check "the chat quits cleanly" tui_wait "TUI-EXITED rc=0" 10

# the history: the reply's thinking is saved apart from its answer
out=$(env HOME=$T XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state XDG_DATA_HOME=$T/data \
	"$PALAVER" --history "$T/history.db" sessions list 2>&1)
id=$(printf '%s\n' "$out" | awk '/Once upon a time/ && !/dragon/ { print $1; exit }')
[ -n "$id" ] || id=$(printf '%s\n' "$out" | awk 'NR == 2 { print $1 }')
js=$(env HOME=$T "$PALAVER" --history "$T/history.db" sessions export "$id" --format json 2>&1)
case $js in *'"reasoning": "'*) ok "the history saved the reasoning apart" ;;
*) fail "the saved session has no reasoning: $(printf '%s' "$js" | head -c 400)" ;; esac

# ---- a template the interpreter refuses: its format, said once ----------
printf '%s' '{% for m in messages %}<|im_start|>{{ m.role|groupby("x") }}{% endfor %}' >"$T/bad.jinja"
tui_start 100x30 "cd $T && env $ENVS $PALAVER -m $MODEL --chat-template $T/bad.jinja -n 8 --no-history"
check "a refused template is said in the transcript" tui_wait "cannot be interpreted" 20
check "... naming why" tui_wait "named 'groupby'" 3
check "... and the format used instead" tui_wait "using the 'chatml' format" 3
check "... and stays in view in the status pane" tui_wait "template: fallback" 3
tui_type "Once"; tui_keys Enter
check "the chat goes on with the format" tui_wait "Enter send" 30
n=$(tui_screen | grep -c "cannot be interpreted")
[ "$n" = 1 ] && ok "it is said once" || fail "the fallback is said $n times"
tui_keys C-d

[ "$TUI_FAILS" -eq 0 ] || { echo "it_tui_thinking: $TUI_FAILS failed"; exit 1; }
echo "it_tui_thinking: ok"
