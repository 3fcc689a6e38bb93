#!/bin/sh
# Check the build and test dependencies with pkg-config (python3-NAME: that
# Python module imports); install the missing Debian packages with apt-get
# when we can, else say what to run.
missing=
for pc in "$@"; do
	case $pc in
	python3-*)
		# a test-only Python module (python3-jinja2: the chat template oracle)
		py=/usr/bin/python3
		[ -x "$py" ] || py=python3
		"$py" -c "import ${pc#python3-}" 2>/dev/null || missing="$missing $pc"
		continue ;;
	esac
	pkg-config --exists "$pc" 2>/dev/null && continue
	case $pc in
	ncursesw) deb=libncurses-dev ;;
	readline) deb=libreadline-dev ;;
	yaml-0.1) deb=libyaml-dev ;;
	sqlite3)  deb=libsqlite3-dev ;;
	cmocka)   deb=libcmocka-dev ;;
	libcurl)  deb=libcurl4-openssl-dev ;;
	jansson)  deb=libjansson-dev ;;
	*)        deb=$pc ;;
	esac
	missing="$missing $deb"
done
command -v pkg-config >/dev/null 2>&1 || missing="pkg-config$missing"
# the remote backend's tests run a loopback server on Python's http.server
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
# what the tests run besides the binaries: each command and its package
for pair in tmux:tmux sqlite3:sqlite3 xz:xz-utils groff:groff script:bsdutils \
	setpriv:util-linux iconv:libc-bin perl:perl-base timeout:coreutils; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
# the Unicode tables are checked against the installed Unicode data
[ -r /usr/share/unicode/UnicodeData.txt ] || missing="$missing unicode-data"
# the tests build the CUDA kernels with the host C++ compiler (gpu/cuda/emu)
command -v "${CXX:-g++}" >/dev/null 2>&1 || missing="$missing g++"
[ -z "$missing" ] && exit 0

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	echo "deps: installing with apt-get:$missing"
	apt-get update -qq >/dev/null 2>&1
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || {
		echo "deps: apt-get install failed; run: apt-get install$missing" >&2
		exit 1
	}
	exit 0
fi
for deb in $missing; do
	echo "deps: missing $deb" >&2
done
if command -v sudo >/dev/null 2>&1; then
	echo "deps: run: sudo apt-get install$missing" >&2
else
	echo "deps: run (as root): apt-get install$missing" >&2
fi
exit 1
