#!/bin/sh
# palaver-tiny: the committed model loads, has its metadata and chatml template, and answers a training question greedily.
P=${PALAVER:-./palaver}
DIR=$(cd "$(dirname "$0")/.." && pwd)
M=$DIR/models/palaver-tiny.gguf
T=$(mktemp -d /tmp/palaver-it-tiny.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data" XDG_STATE_HOME="$T/state" XDG_CACHE_HOME="$T/cache"
unset PALAVER_MODEL PALAVER_HISTORY_PATH PALAVER_CHAT_TEMPLATE PALAVER_SEED
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
has() { grep -q -F -- "$2" "$T/$1" || fail "$1 lacks '$2': $(head -c 400 "$T/$1")"; }

[ -f "$M" ] || { echo "FAIL: $M is missing"; exit 1; }
size=$(wc -c <"$M")
[ "$size" -le 26214400 ] || fail "model is $size bytes, more than 25 MiB"

# 1. metadata and template
"$P" inspect --json "$M" >"$T/inspect" 2>"$T/err" || fail "inspect failed: $(cat "$T/err")"
has inspect '"general.architecture": "llama"'
has inspect '"general.name": "palaver-tiny"'
has inspect '"tokenizer.ggml.model": "llama"'
has inspect '"tokenizer.ggml.eos_token_id": 4'
has inspect '"tokenizer.ggml.bos_token_id": 1'
has inspect '"general.source": "corpus: tools/train/corpus.py'
has inspect '"general.description": "palaver-tiny:'
has inspect "<|im_start|>' + message['role']"
has inspect '"first": ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]'

# 2. the tokenizer gives the ids the training tool used (tools/train/tokenizer.py)
"$P" tokenize -m "$M" --ids --special "<|im_start|>user
How do I search my old chats?<|im_end|>" >"$T/ids" 2>"$T/err" || fail "tokenize failed: $(cat "$T/err")"
ids=$(cat "$T/ids")
case "$ids" in
"1 3 "*" 4") ;;
*) fail "chatml turn tokenized as '$ids', wanted <s> <|im_start|> ... <|im_end|>" ;;
esac

# 3. the forward pass runs and is deterministic
"$P" logits -m "$M" --tokens "$ids" -t 1 -o "$T/l1" 2>"$T/err" || fail "logits failed: $(cat "$T/err")"
"$P" logits -m "$M" --tokens "$ids" -t 2 -o "$T/l2" 2>"$T/err" || fail "logits failed: $(cat "$T/err")"
[ "$(wc -c <"$T/l1")" -eq 8192 ] || fail "logits: wanted 2048 floats, got $(wc -c <"$T/l1") bytes"
cmp -s "$T/l1" "$T/l2" || fail "logits differ between 1 and 2 threads"

# 4. a greedy answer to a training question, through batch mode with the
# model's own (chatml) template
# (the training answer, word for word; docs/MODEL.md lists which questions
# the model gets right)
Q='What does --temp do?'
WANT='--temp t: Sampling temperature; 0 always picks the likeliest token. In config.yaml the key is sampling.temperature.'
"$P" -m "$M" --temp 0 -n 60 --no-history --threads 1 -p "$Q" >"$T/out" 2>"$T/err"
rc=$?
if [ $rc -ne 0 ]; then
	fail "batch mode exited $rc: $(head -c 400 "$T/err")"
elif ! grep -q -x -F -- "$WANT" "$T/out"; then
	fail "greedy answer to '$Q' is '$(cat "$T/out")', wanted '$WANT'"
fi

# 5. with no model named, palaver uses this one (found next to the binary)
"$P" config >"$T/cfgout" 2>"$T/err" || fail "config failed: $(cat "$T/err")"
has cfgout '# built-in model: '
has cfgout 'palaver-tiny.gguf'
cp "$T/out" "$T/out_m"
"$P" --temp 0 -n 60 --no-history --threads 1 -p "$Q" >"$T/out" 2>"$T/err" ||
	fail "batch mode without -m failed: $(head -c 400 "$T/err")"
cmp -s "$T/out" "$T/out_m" || fail "without -m the answer is '$(cat "$T/out")', not the built-in model's"
# ... and an empty model means none
"$P" -m '' -p "$Q" --no-history >"$T/out" 2>"$T/err" && fail "-m '' ran a model"
has err "no model"

[ "$fails" -eq 0 ] || exit 1
exit 0
