# Helpers for driving palaver in a detached tmux session (sourced by tests/it_tui.sh).
# Every wait polls the captured screen with a deadline; nothing relies on fixed sleeps.

TUI_SOCK=${TUI_SOCK:-palaver-test-$$}
TUI_FAILS=0

tui_tmux() { tmux -L "$TUI_SOCK" "$@"; }

# tui_start_raw COLSxLINES COMMAND: a fresh server and session running
# COMMAND as it is.  A tmux server now and then dies while it starts
# ("server exited unexpectedly"), more so right after the last one was
# killed: try again a few times.
tui_start_raw() {
	size=$1; shift
	tui_tmux kill-server 2>/dev/null
	for try in 1 2 3 4 5; do
		tui_tmux -f /dev/null new-session -d -x "${size%x*}" -y "${size#*x}" "$*" 2>/dev/null &&
			tui_tmux has-session 2>/dev/null && break
		sleep 0.5
	done
	tui_tmux set-option -g status off
}

# tui_start COLSxLINES COMMAND: the same, and the pane says TUI-EXITED rc=N
# when COMMAND ends, then stays open for capture-pane.
tui_start() {
	size=$1; shift
	tui_start_raw "$size" "$*; echo TUI-EXITED rc=\$?; sleep 600"
}

tui_stop() { tui_tmux kill-server 2>/dev/null; }

tui_screen() { tui_tmux capture-pane -p -t 0; }

# tui_keys KEY...: tmux send-keys (names such as Enter, Escape, C-d work).
tui_keys() { tui_tmux send-keys -t 0 "$@"; }
# tui_type TEXT: literal text, no key names.
tui_type() { tui_tmux send-keys -t 0 -l -- "$1"; }

# tui_wait REGEX [SECONDS]: until the screen matches (grep -E); 1 on timeout.
tui_wait() {
	deadline=$(( $(date +%s) + ${2:-10} ))
	while :; do
		if tui_screen | grep -Eq -- "$1"; then return 0; fi
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}

# tui_wait_gone REGEX [SECONDS]: until the screen no longer matches.
tui_wait_gone() {
	deadline=$(( $(date +%s) + ${2:-10} ))
	while :; do
		if ! tui_screen | grep -Eq -- "$1"; then return 0; fi
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}

# tui_wait_stable [SECONDS]: until two captures 0.3 s apart are equal.
tui_wait_stable() {
	deadline=$(( $(date +%s) + ${1:-10} ))
	prev=$(tui_screen)
	while :; do
		sleep 0.3
		cur=$(tui_screen)
		[ "$cur" = "$prev" ] && return 0
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		prev=$cur
	done
}

fail() {
	echo "FAIL: $*"
	echo "---- screen ----"
	tui_screen
	echo "----------------"
	TUI_FAILS=$((TUI_FAILS + 1))
}

ok() { echo "ok: $*"; }

# check NAME COMMAND...: run a check, report it.
check() {
	name=$1; shift
	if "$@"; then ok "$name"; else fail "$name"; fi
}

# tui_send TEXT: type a message, press Enter, wait until it shows in the
# transcript and the reply has finished (the idle hint is back).
tui_send() {
	tui_type "$1"
	tui_keys Enter
	tui_wait_gone "^› .*$(printf '%s' "$1" | sed 's/[][\\.*^$/]/\\&/g')" 10 || return 1
	tui_wait "Enter send" "${2:-30}"
}

# tui_scroll_to PATTERN: PgUp until a line matching PATTERN (grep -E) is
# on the screen, 40 pages at most, from where the view is; a fast machine writes a screenful of
# reply between two looks, so what a reply began with is looked for after
# it ends rather than while it streams.
tui_scroll_to() {
	# a notice that follows the reply (the context filled, ...) brings the
	# view back to the bottom: start once the screen has settled
	tui_wait_stable 5
	n=0
	while [ $n -lt 40 ]; do
		tui_screen | grep -Eq "$1" && return 0
		tui_keys PPage
		sleep 0.1
		n=$((n + 1))
	done
	return 1
}
