#!/bin/sh
# Chat templates render byte for byte as Hugging Face renders them: every
# template in ../shared/ref/templates, tests/jinja/templates and the
# reference models, for every conversation in tests/jinja/conversations,
# with and without the generation prompt, through `palaver template` and
# through python3-jinja2 (tests/jinja/oracle.py).  A render that raises in
# Jinja2 must fail in palaver too.
[ -x "$PALAVER" ] || { echo "skip: \$PALAVER is not set to the binary"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
. "$here/refdata.sh"
ref=$REF
py=
for p in /usr/bin/python3 python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import jinja2' 2>/dev/null; then
		py=$p
		break
	fi
done
[ -n "$py" ] || { echo "skip: python3-jinja2 is not installed (make deps)"; exit 77; }
model=$here/../models/palaver-tiny.gguf
[ -r "$model" ] || { echo "skip: models/palaver-tiny.gguf is missing"; exit 77; }

tmp=$(mktemp -d /tmp/palaver-it-jinja.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
SOURCE_DATE_EPOCH=1721995200 # 26 Jul 2024: strftime_now() prints the same on both sides
export SOURCE_DATE_EPOCH

set -- "$here"/jinja/templates/*.jinja
[ -d "$ref/templates" ] && set -- "$@" "$ref"/templates/*.jinja
[ -d "$ref/models" ] && set -- "$@" "$ref"/models/*.gguf
set -- "$@" "$model"
"$py" "$here/jinja/oracle.py" "$tmp" "$model" "$here/jinja/conversations" "$@" ||
	{ echo "FAIL: the oracle failed"; exit 1; }

fails=0 total=0 raised=0
templates=""
while read -r name conv gen tpath tmodel; do
	total=$((total + 1))
	case " $templates " in *" $name "*) ;; *) templates="$templates $name" ;; esac
	want=$tmp/$name.$conv.gen$gen
	[ -e "$want.err" ] || echo "$conv" >>"$tmp/$name.rendered"
	got=$tmp/got
	set -- -m "$tmodel"
	case $tpath in *.jinja) set -- "$@" --chat-template "$tpath" ;; esac
	[ "$gen" = 0 ] && set -- "$@" --no-generation-prompt
	"$PALAVER" --log-level off template "$@" "$here/jinja/conversations/$conv.json" \
		>"$got" 2>"$tmp/err"
	rc=$?
	if [ -e "$want.err" ]; then
		raised=$((raised + 1))
		# Jinja2 raised: palaver must not render from the template (it may
		# fall back to the built-in format, and say so)
		if [ $rc = 0 ] && ! grep -q "the chat template failed" "$tmp/err"; then
			echo "FAIL: $name $conv gen$gen: Jinja2 raised ($(cat "$want.err")) but palaver rendered"
			fails=$((fails + 1))
		fi
		continue
	fi
	if [ $rc != 0 ] || grep -q "the chat template failed" "$tmp/err"; then
		echo "FAIL: $name $conv gen$gen: palaver: $(cat "$tmp/err")"
		fails=$((fails + 1))
	elif ! cmp -s "$want" "$got"; then
		echo "FAIL: $name $conv gen$gen differs from Jinja2:"
		diff "$want" "$got" | head -20
		fails=$((fails + 1))
	fi
done <"$tmp/cases"

# each template renders (without raising) at least 8 conversations
n=0
for t in $templates; do
	n=$((n + 1))
	k=$(sort -u "$tmp/$t.rendered" 2>/dev/null | wc -l)
	if [ "$k" -lt 8 ]; then
		echo "FAIL: $t renders only $k conversations without raising (want 8)"
		fails=$((fails + 1))
	fi
done
if [ $fails -gt 0 ]; then
	echo "FAIL: $fails of $total renders differ ($n templates)"
	exit 1
fi
echo "ok: $total renders of $n templates byte-identical to Jinja2 ($raised raise in both)"
