#!/bin/sh
# Unpack the test suite's reference data: tests/data (the layout of
# ../shared/ref, large files stored as NAME.xz) into a folder the tests read
# as they would ../shared/ref.  Plain files are linked, NAME.xz files are
# decompressed to NAME.  Run by 'make testdata' (and so by make test).
# usage: tools/testdata.sh SRC DEST
set -e
src=$1 dest=$2
[ -d "$src" ] || { echo "testdata: no folder '$src'" >&2; exit 1; }
command -v xz >/dev/null 2>&1 || { echo "testdata: xz is not installed (make deps: xz-utils)" >&2; exit 1; }
abs=$(cd "$src" && pwd)
tmp=$dest.tmp.$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
(cd "$abs" && find . -type f ! -name README.md) | while read -r f; do
	f=${f#./}
	mkdir -p "$tmp/$(dirname "$f")"
	case $f in
	*.xz) xz -dc "$abs/$f" >"$tmp/${f%.xz}" ;;
	*) ln -s "$abs/$f" "$tmp/$f" ;;
	esac
done
# the finished folder replaces the old one at once: a test never sees half of it
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
touch "$dest/.stamp"
