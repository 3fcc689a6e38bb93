#!/bin/sh
# engine/jinja_case.h is what tools/gen_case.py makes from Python's str methods.
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=python3
command -v "$py" >/dev/null 2>&1 || { echo "skip: python3 not installed"; exit 77; }
have=$(sed -n 's/^#define JINJA_CASE_VERSION "\(.*\)"/\1/p' "$root/engine/jinja_case.h")
local=$("$py" -c 'import unicodedata; print(unicodedata.unidata_version)')
if [ "$have" != "$local" ]; then
	echo "skip: engine/jinja_case.h is Unicode $have, this Python has $local"
	exit 77
fi
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
"$py" "$root/tools/gen_case.py" >"$tmp" || exit 1
if ! cmp -s "$tmp" "$root/engine/jinja_case.h"; then
	echo "engine/jinja_case.h differs from what tools/gen_case.py makes"
	echo "regenerate: python3 tools/gen_case.py > engine/jinja_case.h"
	exit 1
fi
echo "ok: engine/jinja_case.h is up to date (Unicode $have)"
