#!/bin/sh
# Run every tests/it_*.sh script with $PALAVER set; each exits 0 (pass),
# 77 (skipped, it says why) or anything else (fail).
dir=$(dirname "$0")
pass=0; fail=0; skip=0; failed=
for t in "$dir"/it_*.sh; do
	[ -e "$t" ] || continue
	echo "== $t"
	sh "$t"; rc=$?
	case $rc in
	0) pass=$((pass + 1)) ;;
	77) skip=$((skip + 1)) ;;
	*) fail=$((fail + 1)); failed="$failed $t" ;;
	esac
done
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }
