#!/bin/sh
# Run every tests/it_*.sh script with $PALAVER set, each under a time limit
# ($PALAVER_TEST_TIMEOUT seconds, default 900: a hang fails and is named);
# each exits 0 (pass), 77 (skipped, it says why) or anything else (fail).
# With CI=true a skip is a failure.
dir=$(dirname "$0")
limit=${PALAVER_TEST_TIMEOUT:-900}
pass=0; fail=0; skip=0; failed=
for t in "$dir"/it_*.sh; do
	[ -e "$t" ] || continue
	echo "== $t"
	timeout -k 10 "$limit" sh "$t"; rc=$?
	case $rc in
	0) pass=$((pass + 1)) ;;
	77)
		if [ "$CI" = true ]; then
			echo "FAIL: $t skipped, which CI=true forbids"
			fail=$((fail + 1)); failed="$failed $t"
		else
			skip=$((skip + 1))
		fi ;;
	124 | 137)
		echo "FAIL: $t did not finish within $limit s (PALAVER_TEST_TIMEOUT)"
		fail=$((fail + 1)); failed="$failed $t" ;;
	*) fail=$((fail + 1)); failed="$failed $t" ;;
	esac
done
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }
