#!/bin/sh
# The manual and --help agree: every long option of `palaver --help` is in
# man/palaver.1, every long option of the man page's OPTIONS section is in
# --help, and groff finds nothing to warn about.
[ -x "$PALAVER" ] || { echo "skip: \$PALAVER is not set to the binary"; exit 77; }
command -v groff >/dev/null 2>&1 || { echo "skip: groff is not installed"; exit 77; }
man=$(dirname "$0")/../man/palaver.1
[ -r "$man" ] || { echo "FAIL: $man not found"; exit 1; }

tmp=$(mktemp -d /tmp/palaver-it-man.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0

warnings=$(groff -man -ww -z "$man" 2>&1)
if [ -n "$warnings" ]; then
	echo "FAIL: groff -man -ww -z reports:"
	echo "$warnings"
	fails=$((fails + 1))
fi

"$PALAVER" --help >"$tmp/help" || { echo "FAIL: palaver --help exits $?"; exit 1; }
# long options of the Options block of --help
sed -n '/^Options:/,/^$/p' "$tmp/help" | grep -o -- '--[a-z][a-z-]*' | sort -u >"$tmp/help.opts"
# every long option the manual mentions, and those of its OPTIONS section
sed 's/\\-/-/g' "$man" | grep -o -- '--[a-z][a-z-]*' | sort -u >"$tmp/man.all"
sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$man" | sed 's/\\-/-/g' |
	grep -o -- '--[a-z][a-z-]*' | sort -u >"$tmp/man.opts"

[ -s "$tmp/help.opts" ] || { echo "FAIL: no options found in --help"; exit 1; }
[ -s "$tmp/man.opts" ] || { echo "FAIL: no options found in the OPTIONS section"; exit 1; }
for o in $(comm -23 "$tmp/help.opts" "$tmp/man.all"); do
	echo "FAIL: $o is in --help but not in man/palaver.1"
	fails=$((fails + 1))
done
for o in $(comm -13 "$tmp/help.opts" "$tmp/man.opts"); do
	echo "FAIL: $o is in the man page's OPTIONS but not in --help"
	fails=$((fails + 1))
done
# the commands of --help are in the COMMANDS section
for c in $(sed -n '/^Commands/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p' "$tmp/help"); do
	sed -n '/^\.SH COMMANDS/,/^\.SH /p' "$man" | grep -qE "^\.BR? $c( |\$)" || {
		echo "FAIL: command '$c' is not in the man page's COMMANDS section"
		fails=$((fails + 1))
	}
done

[ "$fails" -eq 0 ] || { echo "it_manpage: $fails failed"; exit 1; }
echo "it_manpage: $(wc -l <"$tmp/help.opts") options agree"
