#!/bin/sh
# Build build/palaver-dev: the chat against the fake engine, for working on
# the UI by hand before the real engine exists.  Not part of any target.
set -e
cd "$(dirname "$0")/../.."
make -s build/libpalaver.a
flags=$(pkg-config --cflags ncursesw)
libs=$(pkg-config --libs ncursesw readline yaml-0.1 sqlite3 2>/dev/null || echo -lncursesw -lreadline -lyaml -lsqlite3)
cc -std=c11 -g -O1 -D_GNU_SOURCE $flags -Ilib -Iapp -Iengine -Iui -Ihistory -pthread \
	-o build/palaver-dev tests/tui/dev_main.c tests/tui/fake_engine.c \
	build/app/chat.o build/app/chat_engine.o build/app/chat_session.o build/app/chat_commands.o build/libpalaver.a $libs -lm -pthread
echo build/palaver-dev
