#!/bin/sh
# Interleaved side-by-side of palaver and llama.cpp on the same files (issue 19):
# each round runs, per file, palaver bench, llama.cpp's llama-bench and
# node-llama-cpp's llama.cpp (tools/llamacpp_bench.mjs), pp512 and tg128.
#
#   ROUNDS=5 THREADS=2 PALAVER=build/palaver LLAMA_BENCH=.../llama-bench \
#   NLC=.../node_modules sh tools/bench_vs_llamacpp.sh FILE.gguf...
#
# A program left unset (LLAMA_BENCH or NLC empty) is skipped.  Output: one
# line per program and test; take medians of the rounds.
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
PALAVER=${PALAVER:-build/palaver}
here=$(dirname "$0")
[ $# -gt 0 ] || { echo "usage: $0 FILE.gguf..." >&2; exit 2; }
for f in "$@"; do
	[ -r "$f" ] || { echo "bench_vs_llamacpp: cannot read '$f'" >&2; exit 1; }
done
i=1
while [ $i -le "$ROUNDS" ]; do
	for f in "$@"; do
		m=$(basename "$f")
		echo "## round $i $m $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
		"$PALAVER" bench -m "$f" -t "$THREADS" -r 1 -p 512 -n 128 --format csv 2>&1 |
			grep -E '^(pp|tg)' | cut -d, -f1,5,7 | sed "s/^/palaver $m /"
		if [ -n "$LLAMA_BENCH" ]; then
			"$LLAMA_BENCH" -m "$f" -t "$THREADS" -r 1 -p 512 -n 128 -o csv 2>/dev/null |
				tail -2 | awk -F, -v m="$m" '{ print "b4748", m, $(NF-6), $(NF-5), $(NF-1) }'
		fi
		if [ -n "$NLC" ]; then
			NODE_PATH=$NLC node "$here/llamacpp_bench.mjs" "$f" -p 512 -n 128 -r 1 \
				-t "$THREADS" 2>&1 | grep '"test"' | sed "s/^/recent $m /"
		fi
	done
	i=$((i + 1))
done
