#!/bin/sh
# engine/unicode_data.h is what tools/gen_unicode.py makes from the installed Unicode data.
root=$(cd "$(dirname "$0")/.." && pwd)
ucd=${UNICODE_DATA_DIR:-/usr/share/unicode}
. "$(dirname "$0")/refdata.sh"
need_cmd python3
if [ ! -r "$ucd/UnicodeData.txt" ] || [ ! -r "$ucd/PropList.txt" ]; then
	skip_test "no Unicode data in '$ucd' (Debian package unicode-data)"
fi
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
python3 "$root/tools/gen_unicode.py" "$ucd" >"$tmp" || exit 1
if ! cmp -s "$tmp" "$root/engine/unicode_data.h"; then
	ver=$(sed -n 's/^# PropList-\(.*\)\.txt/\1/p' "$ucd/PropList.txt")
	echo "engine/unicode_data.h differs from what tools/gen_unicode.py makes from '$ucd' (Unicode $ver)"
	echo "regenerate: python3 tools/gen_unicode.py > engine/unicode_data.h"
	exit 1
fi
echo "ok: engine/unicode_data.h is up to date"
