#!/bin/sh
# Reasoning end to end: a reference model under templates that open the
# thinking block (as DeepSeek-R1's does) or switch it with enable_thinking
# (as Qwen3's does): batch mode's --reasoning hide|show|stderr, --json,
# --think on|off, and the history and its exports.
P=${PALAVER:-./palaver}
. "$(dirname "$0")/refdata.sh"
M=$REF/models/stories260K.gguf
need_ref models/stories260K.gguf
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/palaver-it-reasoning.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data" XDG_STATE_HOME="$T/state"
unset PALAVER_MODEL PALAVER_HISTORY_PATH PALAVER_THINK PALAVER_REASONING
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run() {
	want=$1; shift
	"$@" </dev/null >"$T/out" 2>"$T/err"; got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, wanted $want: $(head -c 600 "$T/err")"
}
# the generation prompt opens <think>: all the model writes is thinking
printf '%s' '{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}<think>
{% endif %}' >"$T/opens.jinja"
G="-m $M --threads 1 --temp 0 -n 12 --no-history -p Once"

# what the model thinks, from the JSON
run 0 "$P" $G --chat-template "$T/opens.jinja" --json
thought=$(sed -n 's/.*"reasoning":"\([^"]*\)".*/\1/p' "$T/out")
[ -n "$thought" ] || fail "--json has no reasoning: $(cat "$T/out")"
grep -q '"reply":""' "$T/out" || fail "the reply is not empty while the model only thinks: $(cat "$T/out")"
case $thought in *think*) fail "a marker shows in the reasoning: $thought" ;; esac

# --reasoning hide (the default): nothing of it on either stream
run 0 "$P" $G --chat-template "$T/opens.jinja"
[ "$(cat "$T/out")" = "" ] || fail "hide printed '$(cat "$T/out")'"
[ -s "$T/err" ] && fail "hide wrote to stderr: $(cat "$T/err")"
run 0 "$P" $G --chat-template "$T/opens.jinja" --reasoning hide
[ "$(cat "$T/out")" = "" ] || fail "--reasoning hide printed '$(cat "$T/out")'"
# show: on stdout
run 0 "$P" $G --chat-template "$T/opens.jinja" --reasoning show
[ "$(cat "$T/out")" = "$thought" ] || fail "show printed '$(cat "$T/out")', want '$thought'"
# stderr: on stderr, one line
run 0 "$P" $G --chat-template "$T/opens.jinja" --reasoning stderr
[ "$(cat "$T/err")" = "$thought" ] || fail "stderr got '$(cat "$T/err")', want '$thought'"
[ "$(cat "$T/out")" = "" ] || fail "stderr mode printed '$(cat "$T/out")' on stdout"
# the key and its variable
printf 'reasoning: show\n' >"$T/c.yaml"
run 0 "$P" -c "$T/c.yaml" $G --chat-template "$T/opens.jinja"
[ "$(cat "$T/out")" = "$thought" ] || fail "reasoning: show in the config printed '$(cat "$T/out")'"
PALAVER_REASONING=stderr run 0 "$P" $G --chat-template "$T/opens.jinja"
[ "$(cat "$T/err")" = "$thought" ] || fail "PALAVER_REASONING=stderr: '$(cat "$T/err")'"
run 2 "$P" $G --chat-template "$T/opens.jinja" --reasoning loud
grep -q "reasoning" "$T/err" || fail "a bad --reasoning is not named: $(cat "$T/err")"

# --think: a template that reads enable_thinking opens the block or writes
# it closed and empty
J=$here/jinja/templates/thinking.jinja
run 0 "$P" $G --chat-template "$J" --think on --json
grep -q '"reply":"",' "$T/out" || fail "--think on: the reply is not all thinking: $(cat "$T/out")"
grep -q '"reasoning":null' "$T/out" && fail "--think on gave no reasoning"
run 0 "$P" $G --chat-template "$J" --think off --json
grep -q '"reasoning":null' "$T/out" || fail "--think off still thinks: $(cat "$T/out")"
grep -q '"reply":"",' "$T/out" && fail "--think off gave no answer"
run 2 "$P" $G --chat-template "$J" --think maybe
grep -q "think" "$T/err" || fail "a bad --think is not named: $(cat "$T/err")"

# history: the thinking is kept apart, exported in <details> and as JSON
H="$T/h.db"
run 0 "$P" -m "$M" --threads 1 --temp 0 -n 12 --history "$H" -p Once --chat-template "$T/opens.jinja"
id=$("$P" --history "$H" sessions list 2>/dev/null | awk 'NR == 2 { print $1 }')
[ -n "$id" ] || fail "no session saved"
"$P" --history "$H" sessions export "$id" --format md >"$T/md" 2>"$T/err" || fail "export md: $(cat "$T/err")"
grep -q '<details>' "$T/md" || fail "the Markdown export has no <details>: $(cat "$T/md")"
grep -q -F "$thought" "$T/md" || fail "the Markdown export lacks the thinking"
"$P" --history "$H" sessions export "$id" --format json >"$T/js" 2>"$T/err" || fail "export json: $(cat "$T/err")"
grep -q -F "\"reasoning\": \"$thought\"" "$T/js" || fail "the JSON export has no reasoning: $(cat "$T/js")"

[ "$fails" -eq 0 ] || { echo "it_reasoning: $fails failed"; exit 1; }
echo "it_reasoning: ok"
