#!/bin/sh
# palaver template: the prompt a chat template makes of a conversation, its
# tokens with the control tokens marked, and one clear line for bad input.
P=${PALAVER:-./palaver}
here=$(cd "$(dirname "$0")" && pwd)
M=$here/../models/palaver-tiny.gguf
[ -f "$M" ] || { echo "skip: models/palaver-tiny.gguf is missing"; exit 77; }
T=$(mktemp -d /tmp/palaver-it-template.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data" XDG_STATE_HOME="$T/state"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run() {
	want=$1; shift
	"$@" >"$T/out" 2>"$T/err"; got=$?
	[ "$got" -eq "$want" ] || fail "'$*' exited $got, wanted $want: $(head -c 400 "$T/err")"
}
printf '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <|im_end|>"}]' >"$T/conv.json"

# the model's own template (palaver-tiny's is chatml-like), exactly
run 0 "$P" template -m "$M" "$T/conv.json"
printf '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi <|im_end|><|im_end|>\n<|im_start|>assistant\n' >"$T/want"
cmp -s "$T/out" "$T/want" || fail "the prompt differs: $(od -c "$T/out" | head -5)"
# from standard input, without the generation prompt
run 0 sh -c "'$P' template -m '$M' --no-generation-prompt <'$T/conv.json'"
case $(cat "$T/out") in *"assistant"*) fail "--no-generation-prompt still opens the reply" ;; esac
# a format by name
run 0 "$P" template -m "$M" --chat-template llama3 "$T/conv.json"
grep -q "<|start_header_id|>user<|end_header_id|>" "$T/out" || fail "--chat-template llama3: $(cat "$T/out")"
# tokens: the template's <|im_end|> is a control token, the user's is text
run 0 "$P" template -m "$M" --tokens "$T/conv.json"
n=$(grep -c "'<|im_end|>'  (control)" "$T/out")
[ "$n" = 2 ] || fail "--tokens: $n control <|im_end|>, want 2 (the template's): $(cat "$T/out")"
grep -q "'<|im_start|>'  (control)" "$T/out" || fail "--tokens does not mark <|im_start|>"
grep -q "'|'" "$T/out" || fail "the user's <|im_end|> is not plain text"

# bad input: one line, naming it, exit 2
printf '[{"role": "user", "content": "x"' >"$T/bad.json"
run 2 "$P" template -m "$M" "$T/bad.json"
grep -q "bad.json': invalid JSON" "$T/err" || fail "bad JSON: $(cat "$T/err")"
printf '{"tools": []}' >"$T/nomsg.json"
run 2 "$P" template -m "$M" "$T/nomsg.json"
grep -q 'no "messages" member' "$T/err" || fail "no messages: $(cat "$T/err")"
printf '[{"role": "tool", "content": "5"}]' >"$T/tool.json"
run 2 "$P" template -m "$M" --chat-template chatml "$T/tool.json"
grep -q "has no role 'tool'" "$T/err" || fail "a role the format lacks: $(cat "$T/err")"
run 2 "$P" template -m "$M" --chat-template no-such-template "$T/conv.json"
grep -q "unknown chat template 'no-such-template'" "$T/err" || fail "unknown name: $(cat "$T/err")"
run 2 "$P" template -m '' "$T/conv.json"
grep -q "nothing to render with" "$T/err" || fail "no model, no template: $(cat "$T/err")"
run 1 "$P" template -m "$T/missing.gguf" "$T/conv.json"
grep -q "missing.gguf" "$T/err" || fail "a missing model is not named: $(cat "$T/err")"
for f in "$T/err"; do
	[ "$(wc -l <"$f")" -le 1 ] || fail "more than one line: $(cat "$f")"
done
# harmony (gpt-oss): the reasoning effort in the system message, the system
# prompt as the developer's instructions, earlier answers on the final channel
printf '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]' >"$T/h.json"
run 0 env SOURCE_DATE_EPOCH=0 "$P" template --chat-template harmony --reasoning-effort high "$T/h.json"
grep -q '^Reasoning: high$' "$T/out" || fail "harmony: effort: $(cat "$T/out")"
grep -q '^Current date: 1970-01-01$' "$T/out" || fail "harmony: date"
grep -q '<|start|>developer<|message|># Instructions$' "$T/out" || fail "harmony: instructions"
grep -q '<|start|>assistant<|channel|>final<|message|>Hello.<|end|><|start|>user<|message|>Bye<|end|><|start|>assistant$' "$T/out" ||
	fail "harmony: turns: $(cat "$T/out")"
PALAVER_REASONING_EFFORT=low run 0 "$P" template --chat-template gpt-oss "$T/h.json"
grep -q '^Reasoning: low$' "$T/out" || fail "harmony: effort from the environment"
run 0 "$P" template --chat-template harmony "$T/h.json"
grep -q '^Reasoning: medium$' "$T/out" || fail "harmony: the default effort"
run 2 "$P" template --chat-template harmony --reasoning-effort extreme "$T/h.json"
grep -q "'reasoning_effort' must be one of auto, low, medium, high, not 'extreme'" "$T/err" ||
	fail "a bad effort: $(cat "$T/err")"

# a template that raises, with no format to fall back to: its message, exit 1
printf '{{ raise_exception("roles must alternate") }}' >"$T/raise.jinja"
run 1 "$P" template -m "$M" --chat-template "$T/raise.jinja" "$T/conv.json"
grep -q "roles must alternate" "$T/err" || fail "raise_exception's message: $(cat "$T/err")"

[ "$fails" -eq 0 ] || { echo "it_template: $fails failed"; exit 1; }
echo "it_template: ok"
