# Sourced by the tests/it_*.sh scripts: where the reference data is, and how
# a script says it cannot run.  The C tests' twin is tests/testutil.h.
#
# REF is $PALAVER_REF_DIR, else ../shared/ref (the project's source of
# reference data, beside the repository), else build/testdata (tests/data
# unpacked by `make testdata`: what a clone has).
# need_ref FILE...: each FILE (relative to REF) must exist, else the script
# skips (exit 77) -- or fails, with CI=true, where any skip is a failure.
_root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "$PALAVER_REF_DIR" ]; then
	REF=$PALAVER_REF_DIR
elif [ -d "$_root/../shared/ref" ]; then
	REF=$_root/../shared/ref
else
	REF=$_root/build/testdata
fi
# skip_test REASON: exit 77, or 1 when CI=true
skip_test() {
	if [ "$CI" = true ]; then
		echo "FAIL: would skip under CI=true: $*"
		exit 1
	fi
	echo "skip: $*"
	exit 77
}
need_ref() {
	for _f in "$@"; do
		[ -e "$REF/$_f" ] || skip_test "reference file '$REF/$_f' not found (set PALAVER_REF_DIR, or run 'make testdata')"
	done
}
