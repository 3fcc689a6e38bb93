# Sourced by the tests/it_*.sh scripts: where the reference data is, and how
# a script says it cannot run.  The C tests' twin is tests/testutil.h.
#
# REF is $PALAVER_REF_DIR, else ../shared/ref (the project's source of
# reference data, beside the repository), else build/testdata (tests/data
# unpacked by 'make testdata': what a clone has); an absolute path.
# skip_test REASON: exit 77 (skipped), or 1 with CI=true, where any skip is
# a failure.  need_ref FILE...: skip unless each FILE (under REF) exists.
# need_cmd CMD...: skip unless each command is installed (make deps).
_root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "$PALAVER_REF_DIR" ]; then
	REF=$(cd "$PALAVER_REF_DIR" 2>/dev/null && pwd) || REF=$PALAVER_REF_DIR
elif [ -d "$_root/../shared/ref" ]; then
	REF=$(cd "$_root/../shared/ref" && pwd)
else
	REF=$_root/build/testdata
fi
skip_test() {
	if [ "$CI" = true ]; then
		echo "FAIL: would skip, which CI=true forbids: $*"
		exit 1
	fi
	echo "skip: $*"
	exit 77
}
need_ref() {
	for _f in "$@"; do
		[ -e "$REF/$_f" ] || skip_test "reference file '$REF/$_f' not found (run 'make testdata', or set PALAVER_REF_DIR)"
	done
}
need_cmd() {
	for _c in "$@"; do
		command -v "$_c" >/dev/null 2>&1 || skip_test "'$_c' is not installed (make deps)"
	done
}
