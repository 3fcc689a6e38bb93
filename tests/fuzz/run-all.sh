#!/bin/sh
# Nightly fuzzing (make fuzz-all): run each libFuzzer target for SECONDS,
# from its seeds in tests/fuzz/<target>/ and the corpus it grew before
# (build-fuzz/<target>/corpus); a crash, leak or timeout is kept as
# build-fuzz/<target>/crash-* (or leak-*, timeout-*) and fails the run.
# usage: tests/fuzz/run-all.sh SECONDS TARGET...
secs=$1; shift
root=$(cd "$(dirname "$0")/../.." && pwd)
export PALAVER_REF_DIR=${PALAVER_REF_DIR:-$( [ -d "$root/../shared/ref" ] && echo "$root/../shared/ref" || echo "$root/build/testdata")}
failed=
for t in "$@"; do
	out=$root/build-fuzz/$t
	mkdir -p "$out/corpus"
	case $t in
	gguf) maxlen=1200000 seeds="$root/tests/fuzz/regress"
		cp -n "$PALAVER_REF_DIR"/models/stories260K.gguf "$PALAVER_REF_DIR"/vocab/*.gguf "$out/corpus/" 2>/dev/null ;;
	import) maxlen=65536 seeds="$root/tests/fuzz/import" ;;
	config) maxlen=16384 seeds="$root/tests/fuzz/config" ;;
	tokenizer) maxlen=4096 seeds="$root/tests/fuzz/tokenizer" ;;
	*) echo "fuzz-all: unknown target '$t'" >&2; exit 2 ;;
	esac
	echo "== fuzz_$t: $secs s"
	"$root/build-fuzz/fuzz_$t" -max_total_time="$secs" -max_len=$maxlen -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/" \
		"$out/corpus" "$seeds" >"$out/log" 2>&1
	rc=$?
	grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "$out/log"
	grep -E '^#[0-9]+ +DONE' "$out/log" | tail -1
	if [ $rc -ne 0 ]; then
		echo "fuzz_$t: FOUND something (exit $rc): $(ls "$out" | grep -E '^(crash|leak|timeout|oom)-' | head -3)"
		tail -30 "$out/log"
		failed="$failed $t"
	fi
done
[ -z "$failed" ] || { echo "fuzz-all: findings in:$failed"; exit 1; }
echo "fuzz-all: no findings"
