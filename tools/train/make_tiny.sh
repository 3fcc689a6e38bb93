#!/bin/sh
# Rebuild models/palaver-tiny.gguf from scratch: corpus, tokenizer, training, evaluation, export.
#
# Usage (from the repository root, through `make tiny-model`):
#   sh tools/train/make_tiny.sh BUILD_DIR
# Environment: TINY_OUT (work folder, default tools/train/out), TINY_STEPS
# (2200), TINY_THREADS (2: the committed model was trained with two threads;
# another count changes the numerics slightly), TINY_MODEL (the output GGUF,
# default models/palaver-tiny.gguf).  The training runs under nice -n 19.
# An interrupted run resumes from OUT/ckpt.pt when the regenerated corpus is
# the one the checkpoint was trained on; otherwise it starts over.
set -e
BUILD=${1:-build}
PY=${PYTHON:-/usr/bin/python3}
OUT=${TINY_OUT:-tools/train/out}
STEPS=${TINY_STEPS:-2200}
THREADS=${TINY_THREADS:-2}
MODEL=${TINY_MODEL:-models/palaver-tiny.gguf}
T=tools/train

sh $T/deps.sh
start=$(date +%s)
mkdir -p "$OUT"
PALAVER=$BUILD/palaver nice -n 19 "$PY" $T/corpus.py "$OUT.new"
if [ -f "$OUT/ckpt.pt" ] && cmp -s "$OUT/train.jsonl" "$OUT.new/train.jsonl"; then
	echo "tiny-model: same corpus, resuming from $OUT/ckpt.pt"
	rm -rf "$OUT.new"
else
	rm -rf "$OUT"
	mv "$OUT.new" "$OUT"
	nice -n 19 "$PY" $T/tokenizer.py "$OUT"
fi
OMP_NUM_THREADS=$THREADS nice -n 19 "$PY" $T/train.py "$OUT" --steps "$STEPS" --batch 8 \
	--lr 2e-3 --warmup 100 --save-every 50
OMP_NUM_THREADS=$THREADS nice -n 19 "$PY" $T/eval.py "$OUT" --json "$OUT/eval.json" > "$OUT/eval.txt"
tail -n 1 "$OUT/eval.txt"

"$PY" $T/export.py "$OUT" --sources "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" -o "$OUT/palaver-tiny.raw"
"$BUILD/tiny_gguf" "$OUT/palaver-tiny.raw" "$MODEL"
rm -f "$OUT/palaver-tiny.raw"
echo "tiny-model: wrote $MODEL in $(( $(date +%s) - start )) s"
