#!/bin/sh
# CPU used by the chat while idle and while a reply streams, UI thread apart
# from the whole process (the engine's threads).  Not a test: figures for
# docs/notes/ui.md.  usage: sh tests/tui/measure-cpu.sh [PALAVER] [MODEL]
cd "$(dirname "$0")/../.." || exit 1
PALAVER=${1:-$PWD/build/palaver}
MODEL=${2:-$(cd ../shared/ref/models && pwd)/stories260K.gguf}
TUI_SOCK=palaver-measure-$$
. tests/tui/lib.sh
T=$(mktemp -d)
trap 'tui_stop; rm -rf "$T"' EXIT
tui_start 100x30 "cd $T && env HOME=$T XDG_STATE_HOME=$T/state LC_ALL=C.UTF-8 $PALAVER -m $MODEL --chat-template none -n 200 --history $T/h.db"
tui_wait "state +ready" 20 || { echo "the model did not load"; exit 1; }
pid=$(pgrep -P "$(tui_tmux display -p -t 0 '#{pane_pid}')" -x "$(basename "$PALAVER")" | head -1)
ticks() { awk '{print $14 + $15}' "$1"; }
sleep 1
a=$(ticks /proc/$pid/stat); sleep 3; b=$(ticks /proc/$pid/stat)
echo "idle: $((b - a)) ticks in 3 s"
tui_type "Once upon a time"; tui_keys Enter
sleep 0.3
u=$(ticks /proc/$pid/task/$pid/stat); p=$(ticks /proc/$pid/stat)
sleep 2
u2=$(ticks /proc/$pid/task/$pid/stat); p2=$(ticks /proc/$pid/stat)
echo "streaming: UI thread $((u2 - u)) ticks, process $((p2 - p)) ticks in 2 s ($(getconf CLK_TCK) ticks/s)"
