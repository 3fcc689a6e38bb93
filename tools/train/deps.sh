#!/bin/sh
# Check what `make tiny-model` needs (Debian's PyTorch, SentencePiece, NumPy,
# WordNet, OpenBLAS); install the missing packages with apt-get when root, else say what to run.
PY=${PYTHON:-/usr/bin/python3}
missing=
[ -x "$PY" ] || missing="$missing python3"
"$PY" -c 'import torch' 2>/dev/null || missing="$missing python3-torch"
"$PY" -c 'import sentencepiece' 2>/dev/null || missing="$missing python3-sentencepiece"
"$PY" -c 'import numpy' 2>/dev/null || missing="$missing python3-numpy"
[ -r "${WORDNET_DIR:-/usr/share/wordnet}/data.noun" ] || missing="$missing wordnet-base"
# Debian's torch calls the BLAS behind libblas.so.3: the reference BLAS runs
# the training at about 6 GFLOP/s, OpenBLAS at about 140 (20 times faster)
ls /usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 || missing="$missing libopenblas0-pthread"
[ -z "$missing" ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	echo "tiny-model: installing with apt-get:$missing"
	apt-get update -qq >/dev/null 2>&1
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || {
		echo "tiny-model: apt-get install failed; run: apt-get install$missing" >&2
		exit 1
	}
	exit 0
fi
if command -v sudo >/dev/null 2>&1; then
	echo "tiny-model: missing packages; run: sudo apt-get install$missing" >&2
else
	echo "tiny-model: missing packages; run (as root): apt-get install$missing" >&2
fi
exit 1
