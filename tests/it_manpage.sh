#!/bin/sh
# The manual and the binary agree: every long option of `palaver --help` is
# in man/palaver.1 and every long option of the man page's OPTIONS section in
# --help; every command has its subsection with every option its --help
# lists; every chat command and every configuration key is described; and
# groff finds nothing to warn about.
. "$(dirname "$0")/refdata.sh"
[ -x "$PALAVER" ] || skip_test "\$PALAVER is not set to the binary"
need_cmd groff
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
# the commands of --help each have a subsection of COMMANDS, and every long
# option of `palaver COMMAND --help` is in the manual
sed -n '/^\.SH COMMANDS/,/^\.SH /p' "$man" >"$tmp/man.cmds"
for c in $(sed -n '/^Commands/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p' "$tmp/help"); do
	grep -qE "^\.(SS|BR?) \"?$c( |\"|\$)" "$tmp/man.cmds" || {
		echo "FAIL: command '$c' is not in the man page's COMMANDS section"
		fails=$((fails + 1))
	}
	"$PALAVER" "$c" --help >"$tmp/cmd.help" 2>&1 </dev/null || {
		echo "FAIL: palaver $c --help exits $?"
		fails=$((fails + 1))
	}
	for o in $(grep -o -- '--[a-z][a-z-]*' "$tmp/cmd.help" | grep -vx -- --option | sort -u); do
		grep -qxF -- "$o" "$tmp/man.all" || {
			echo "FAIL: $o of 'palaver $c --help' is not in man/palaver.1"
			fails=$((fails + 1))
		}
	done
done
# the slash commands of the chat's table are in CHAT COMMANDS AND KEYS
slash=$(dirname "$0")/../ui/slash.c
if [ -r "$slash" ]; then
	sed -n '/^\.SH CHAT COMMANDS/,/^\.SH /p' "$man" >"$tmp/man.chat"
	for k in $(sed -n 's/^\t{ SLASH_[A-Z]*, "\([a-z]*\)".*/\1/p' "$slash"); do
		grep -qE "^\.B[IR]? /$k( |\$)" "$tmp/man.chat" || {
			echo "FAIL: chat command /$k is not in CHAT COMMANDS AND KEYS"
			fails=$((fails + 1))
		}
	done
fi
# every configuration key is in the CONFIGURATION section
sed -n '/^\.SH CONFIGURATION/,/^\.SH /p' "$man" | sed 's/\\-/-/g' >"$tmp/man.conf"
"$PALAVER" --log-level off config --no-origin </dev/null | awk '
	/^[a-z_]+:$/ { sect = substr($1, 1, length($1) - 1); next }
	/^[a-z_]+:/ { sect = ""; k = $1; sub(/:$/, "", k); print k; next }
	/^  [a-z_]+:/ { k = $1; sub(/:$/, "", k); print sect "." k }' >"$tmp/keys"
[ -s "$tmp/keys" ] || { echo "FAIL: no keys from palaver config"; fails=$((fails + 1)); }
for k in $(cat "$tmp/keys"); do
	grep -qE "^\.BR? $k( |\$)" "$tmp/man.conf" || {
		echo "FAIL: configuration key '$k' is not in the man page's CONFIGURATION section"
		fails=$((fails + 1))
	}
done

[ "$fails" -eq 0 ] || { echo "it_manpage: $fails failed"; exit 1; }
echo "it_manpage: $(wc -l <"$tmp/help.opts") options agree"
