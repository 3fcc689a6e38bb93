#!/bin/sh
# The palaver binary's command line: bad flags and config files give one
# clear line and exit 2; --version, --help, `palaver config` and logging work.
. "$(dirname "$0")/refdata.sh"
[ -x "$PALAVER" ] || skip_test "\$PALAVER is not set to the binary"

tmp=$(mktemp -d /tmp/palaver-it-cli.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
# a clean environment: no user files, no PALAVER_* variables
for v in $(env | sed -n 's/^\(PALAVER_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" XDG_STATE_HOME="$tmp/state"
mkdir -p "$HOME"
cd "$tmp" || exit 1

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run NAME RC ERR ARGS...: exit status must be RC and stderr exactly ERR
# (ERR "-" skips the stderr check).
run() {
	name=$1 want_rc=$2 want_err=$3
	shift 3
	"$PALAVER" "$@" >out 2>err </dev/null
	rc=$?
	[ "$rc" = "$want_rc" ] || fail "$name: exit $rc, want $want_rc ($(head -c 300 err))"
	if [ "$want_err" != "-" ] && [ "$(cat err)" != "$want_err" ]; then
		fail "$name: stderr was '$(cat err)', want '$want_err'"
	fi
}
# contains NAME FILE TEXT: FILE holds the line fragment TEXT
contains() {
	grep -qF -- "$3" "$2" || fail "$1: '$3' not in $2: $(head -c 400 "$2")"
}

usage="usage: palaver [options] [COMMAND [ARGS]]; see 'palaver --help'"

# ---- version and help
run version 0 "" --version
grep -qE '^palaver [0-9]+\.[0-9]+\.[0-9]+' out || fail "version: got '$(cat out)'"
run help 0 "" --help
contains help out "usage: palaver [options] [COMMAND [ARGS]]"
contains help out "Exit status: 0 success, 1 runtime failure, 2 usage or configuration error"
contains help out "130 interrupted (Ctrl-C in batch mode)"
# from a source tree the manual is named by its file, which man can open
page=$(sed -n "s/^See 'man \(.*\)' for the details.$/\1/p" out)
case $PALAVER in
*/build/palaver) [ -f "$page" ] || fail "help: names the manual '$page', which is not a file" ;;
esac
for c in inspect tokenize logits bench perplexity sessions config mkmodel; do
	grep -qE "^  $c " out || fail "help: command '$c' not listed"
done
run help-short 0 "" -h

# ---- bad command lines
run bad-flag 2 "palaver: unknown option '--tmep'; did you mean '--temp'?
$usage" --tmep 0.5
run bad-short 2 "palaver: unknown option '-Q'
$usage" -Q
run missing-value 2 "palaver: option '--model' needs a value (FILE)
$usage" --model
run bad-value 2 "palaver: option '--threads': 'threads' must be an integer, not 'lots'
$usage" --threads lots config
run range-value 2 "palaver: option '--top-p': 'sampling.top_p' must be between 0 and 1, not 7
$usage" --top-p 7 config
run bad-command 2 "palaver: 'confg' is not a palaver command; did you mean 'config'?
$usage" confg
run bad-command2 2 "palaver: 'frobnicate' is not a palaver command
$usage" frobnicate
run bad-sub-flag 2 "palaver: option '--seed': 'sampling.seed' must be an integer from 0 to 18446744073709551615 or random, not 'x'" config --seed x
run config-extra 2 - config --bogus
contains config-extra err "palaver: config: unknown option '--bogus'"

# ---- bad config files: FILE:LINE:COL: message, exit 2
printf 'threads: 4\nthreads: 5\n' >dup.yaml
run dup-key 2 "dup.yaml:2:1: duplicate key 'threads' (first given on line 1)" --config dup.yaml config
# before the chat or batch mode starts, too
run dup-key-nocmd 2 "dup.yaml:2:1: duplicate key 'threads' (first given on line 1)" --config dup.yaml
printf 'model: a.gguf\nsampling:\n  temprature: 0.3\n' >typo.yaml
run unknown-key 2 "typo.yaml:3:3: unknown key 'temprature' in 'sampling'; did you mean 'temperature'?" -c typo.yaml config
printf 'ctx: [1, 2\n' >broken.yaml
run bad-yaml 2 "broken.yaml:2:1: bad YAML: did not find expected ',' or ']'" -c broken.yaml config
printf 'threads: four\n' >type.yaml
run wrong-type 2 "type.yaml:1:10: 'threads' must be an integer, not 'four'" -c type.yaml config
printf 'sampling:\n  top_p: 1.5\n' >range.yaml
run out-of-range 2 "range.yaml:2:10: 'sampling.top_p' must be between 0 and 1, not 1.5" -c range.yaml config
run missing-file 2 "palaver: cannot read config file 'nope.yaml': No such file or directory" -c nope.yaml config
# a broken user config stops palaver before any command runs
mkdir -p "$XDG_CONFIG_HOME/palaver"
printf 'backend: gpu\n' >"$XDG_CONFIG_HOME/palaver/config.yaml"
run bad-user-file 2 "$XDG_CONFIG_HOME/palaver/config.yaml:1:10: 'backend' must be one of auto, cpu, cuda, not 'gpu'" config
rm "$XDG_CONFIG_HOME/palaver/config.yaml"
PALAVER_THREADS=many run bad-env 2 "palaver: \$PALAVER_THREADS: 'threads' must be an integer, not 'many'" config

# ---- palaver config: values with their origins
printf 'model: file.gguf\nthreads: 3\nsampling:\n  top_k: 7\n' >good.yaml
printf 'ctx: 1024\n' >"$XDG_CONFIG_HOME/palaver/config.yaml"
PALAVER_THREADS=5 PALAVER_TEMPERATURE=0.2 run config 0 "" -c good.yaml --temp 0.3 config --seed 9
contains config out "# files read: $XDG_CONFIG_HOME/palaver/config.yaml, good.yaml"
grep -qE '^model: "file.gguf" +# good.yaml:1$' out || fail "config: model origin: $(grep '^model' out)"
grep -qE '^threads: 5 +# \$PALAVER_THREADS$' out || fail "config: env origin: $(grep '^threads' out)"
grep -qE '^context: 1024 +# .*/config/palaver/config.yaml:1$' out ||
	fail "config: user file origin: $(grep '^context' out)"
grep -qE '^  temperature: 0.3 +# --temp$' out || fail "config: flag origin: $(grep temperature out)"
grep -qE '^  top_k: 7 +# good.yaml:4$' out || fail "config: nested origin: $(grep top_k out)"
grep -qE '^  seed: 9 +# --seed$' out || fail "config: subcommand flag: $(grep seed out)"
grep -qE '^backend: auto +# default$' out || fail "config: default origin: $(grep '^backend' out)"
rm "$XDG_CONFIG_HOME/palaver/config.yaml"
# without origins the output is a config file palaver reads back unchanged
run config-plain 0 "" -m 'x "quoted".gguf' -s 'two
lines' config --no-origin
cp out plain.yaml
run config-reread 0 "" -c plain.yaml config --no-origin
cmp -s out plain.yaml || fail "config-reread: output differs: $(diff plain.yaml out)"
# the built-in model is null in such a file, not this build's path
run config-builtin 0 "" config --no-origin
grep -qx 'model: null' out || fail "config --no-origin writes the built-in model's path: $(grep '^model' out)"
run config-builtin-origin 0 "" config
grep -qE '^model: null +# built-in model: /.*palaver-tiny.gguf$' out ||
	fail "config: the built-in model's origin: $(grep '^model' out)"
run config-key 0 "" -t 6 config threads
[ "$(cat out)" = 6 ] || fail "config-key: got '$(cat out)'"
run config-badkey 2 "palaver: unknown configuration key 'thread'" config thread
run config-help 0 "" config --help
contains config-help out "usage: palaver [options] config"

# ---- every command is built and answers --help (and -h) with its usage on
# stdout, exit 0, nothing on stderr
"$PALAVER" --help >help.txt
ncmd=0
for c in $(sed -n '/^Commands/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p' help.txt); do
	ncmd=$((ncmd + 1))
	for h in --help -h; do
		run "$c-$h" 0 "" "$c" "$h"
		grep -q "usage: palaver .*$c" out || fail "$c $h: no usage line: $(head -c 200 out)"
		! grep -qi "not built" out || fail "$c $h: says it is not built"
	done
done
[ "$ncmd" -ge 8 ] || fail "help: $ncmd commands listed, want at least 8"
# the benchmark families and the sessions subcommands answer --help too
for f in --tokenizer --history --cancel --reuse; do
	run "bench$f-help" 0 "" bench "$f" --help
	contains "bench$f-help" out "usage: palaver bench"
done
for s in list show search export import rename delete; do
	run "sessions-$s-help" 0 "" sessions "$s" --help
	contains "sessions-$s-help" out "usage: palaver sessions"
done

# ---- logging goes to the file, never to the terminal
run log-file 0 "" --log-file "$tmp/logs/deep/p.log" --log-level debug config
[ -s "$tmp/logs/deep/p.log" ] || fail "log-file: $tmp/logs/deep/p.log not written"
contains log-file "$tmp/logs/deep/p.log" "command 'config'"
run log-default 0 "" config
[ -s "$XDG_STATE_HOME/palaver/palaver.log" ] || fail "log-default: no $XDG_STATE_HOME/palaver/palaver.log"
run log-off 0 "" --log-level off --log-file "$tmp/off.log" config
[ ! -e "$tmp/off.log" ] || fail "log-off: the log file was created"
: >"$tmp/notadir"
run log-unwritable 1 - --log-file "$tmp/notadir/x.log" config
contains log-unwritable err "palaver: cannot "
run log-level-bad 2 - --log-level loud config
contains log-level-bad err "'log.level' must be one of trace, debug, info, warn, error, off, not 'loud'"

[ "$fails" -eq 0 ] || { echo "it_cli: $fails failed"; exit 1; }
echo "it_cli: all passed"
