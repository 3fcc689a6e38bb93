#!/bin/sh
# Run every cmocka test binary, each under a time limit ($PALAVER_TEST_TIMEOUT
# seconds, default 900: a hang fails and is named); print each binary's
# summary and a total line.  With CI=true a skipped test is a failure.
limit=${PALAVER_TEST_TIMEOUT:-900}
log=$(mktemp /tmp/palaver-unit.XXXXXX) || exit 1
trap 'rm -f "$log"' EXIT
pass=0; fail=0; failed=
for t in "$@"; do
	echo "== $t"
	timeout -k 10 "$limit" "$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "FAIL: $t did not finish within $limit s (PALAVER_TEST_TIMEOUT)"
		rc=1
	elif [ "$rc" -eq 0 ] && [ "$CI" = true ] && grep -q '^\[  SKIPPED \]' "$log"; then
		echo "FAIL: $t skipped tests, which CI=true forbids"
		rc=1
	fi
	if [ "$rc" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }
