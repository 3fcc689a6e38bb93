/* Terminal input decoding: raw bytes to keys, pastes and mouse wheel events. */
#ifndef PALAVER_KEYS_H
#define PALAVER_KEYS_H

#include <stddef.h>
#include "strbuf.h"

enum key_type {
	K_BYTES,   /* anything else: give the bytes to readline */
	K_PASTE,   /* a bracketed paste: the text, CR/CRLF turned into LF */
	K_ENTER,   /* CR */
	K_NEWLINE, /* Ctrl-J or Alt-Enter: a newline in the input */
	K_TAB,
	K_ESC, /* a lone Escape (no sequence followed in time) */
	K_CTRL_C,
	K_CTRL_D,
	K_PGUP,
	K_PGDN,
	K_HOME,
	K_END,
	K_UP,
	K_DOWN,
	K_WHEEL_UP,
	K_WHEEL_DOWN,
	K_BACKSPACE,
	K_IGNORE,  /* other mouse reports */
	K_REDRAW,  /* Ctrl-L */
	K_SUSPEND, /* Ctrl-Z */
	K_CTRL_T,  /* how a reply's thinking shows */
};

struct key {
	enum key_type type;
	const char *bytes; /* the raw bytes (K_PASTE: the pasted text) */
	size_t len;
};

typedef void (*key_fn)(void *ctx, const struct key *k);

/*
 * Decoder state.  Invariant: `pending` holds either nothing or the start of
 * an escape sequence that is not complete yet; `in_paste` means the bytes
 * since ESC [ 200 ~ are being collected in `paste` until ESC [ 201 ~.
 */
struct keys {
	struct strbuf pending;
	struct strbuf paste;
	int in_paste;
};

void keys_init(struct keys *k);
void keys_release(struct keys *k);
/* Decode bytes, calling fn for every complete key (in order). */
void keys_feed(struct keys *k, const char *buf, size_t n, key_fn fn, void *ctx);
/* Bytes wait for the rest of an escape sequence: the caller waits a short
 * time (KEYS_ESC_MS) for more input, then calls keys_flush. */
int keys_waiting(const struct keys *k);
/* Time is up: a lone ESC becomes K_ESC, a partial sequence its bytes. */
void keys_flush(struct keys *k, key_fn fn, void *ctx);

#define KEYS_ESC_MS 30

#endif
