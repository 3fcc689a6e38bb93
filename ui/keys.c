/* Decoding of terminal input bytes: escape sequences, bracketed paste, SGR mouse. */
#include "keys.h"

#include <string.h>

void keys_init(struct keys *k)
{
	strbuf_init(&k->pending, 0);
	strbuf_init(&k->paste, 0);
	k->in_paste = 0;
}

void keys_release(struct keys *k)
{
	strbuf_release(&k->pending);
	strbuf_release(&k->paste);
	k->in_paste = 0;
}

int keys_waiting(const struct keys *k)
{
	return k->pending.len > 0 && !k->in_paste;
}

static void emit(key_fn fn, void *ctx, enum key_type t, const char *b, size_t n)
{
	struct key key = { t, b, n };
	fn(ctx, &key);
}

static void paste_add(struct keys *k, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			strbuf_addch(&k->paste, '\n');
			if (i + 1 < n && s[i + 1] == '\n')
				i++;
		} else {
			strbuf_addch(&k->paste, s[i]);
		}
	}
}

/* Decode a complete CSI sequence s[0..n) ("\e[...final"). */
static void csi(const char *s, size_t n, key_fn fn, void *ctx)
{
	const char *p = s + 2;
	size_t pl = n - 3; /* parameters and intermediates */
	char final = s[n - 1];
	enum key_type t = K_BYTES;

	if (pl > 0 && p[0] == '<' && (final == 'M' || final == 'm')) {
		/* SGR mouse: <button;x;y */
		int b = 0;
		for (size_t i = 1; i < pl && p[i] >= '0' && p[i] <= '9'; i++)
			b = b * 10 + (p[i] - '0');
		t = (b & ~(4 | 8 | 16)) == 64   ? K_WHEEL_UP
		    : (b & ~(4 | 8 | 16)) == 65 ? K_WHEEL_DOWN
						: K_IGNORE;
	} else if (final == '~') {
		if (pl == 1 && (p[0] == '5'))
			t = K_PGUP;
		else if (pl == 1 && p[0] == '6')
			t = K_PGDN;
		else if (pl == 1 && (p[0] == '1' || p[0] == '7'))
			t = K_HOME;
		else if (pl == 1 && (p[0] == '4' || p[0] == '8'))
			t = K_END;
	} else if (pl == 0) {
		switch (final) {
		case 'H': t = K_HOME; break;
		case 'F': t = K_END; break;
		case 'A': t = K_UP; break;
		case 'B': t = K_DOWN; break;
		}
	}
	emit(fn, ctx, t, s, n);
}

/* Try to decode an escape sequence at s[0] == ESC; returns the bytes it
 * takes, or 0 when more bytes are needed. */
static size_t escape(struct keys *k, const char *s, size_t n, key_fn fn, void *ctx)
{
	if (n < 2)
		return 0;
	if (s[1] == '[') {
		size_t i = 2;
		/* parameters 0x30-0x3f, intermediates 0x20-0x2f, final 0x40-0x7e */
		while (i < n && (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] <= 0x3f)
			i++;
		if (i >= n)
			return 0;
		if ((unsigned char)s[i] < 0x40 || (unsigned char)s[i] > 0x7e) {
			/* malformed: give readline the bytes so far */
			emit(fn, ctx, K_BYTES, s, i);
			return i;
		}
		if (i - 2 == 3 && !memcmp(s + 2, "200~", 4)) {
			k->in_paste = 1;
			strbuf_reset(&k->paste);
			return i + 1;
		}
		if (i == 2 && s[i] == 'M') {
			/* X10 mouse report: three more bytes */
			if (n < 6)
				return 0;
			emit(fn, ctx, K_IGNORE, s, 6);
			return 6;
		}
		csi(s, i + 1, fn, ctx);
		return i + 1;
	}
	if (s[1] == 'O') {
		if (n < 3)
			return 0;
		enum key_type t = s[2] == 'H'   ? K_HOME
				  : s[2] == 'F' ? K_END
				  : s[2] == 'A' ? K_UP
				  : s[2] == 'B' ? K_DOWN
						: K_BYTES;
		emit(fn, ctx, t, s, 3);
		return 3;
	}
	if (s[1] == '\r' || s[1] == '\n') {
		emit(fn, ctx, K_NEWLINE, s, 2);
		return 2;
	}
	if (s[1] == 0x1b) {
		/* ESC ESC: the first one stands alone */
		emit(fn, ctx, K_ESC, s, 1);
		return 1;
	}
	/* Alt-key: readline takes ESC + the key */
	emit(fn, ctx, K_BYTES, s, 2);
	return 2;
}

static size_t special(unsigned char c, enum key_type *t)
{
	switch (c) {
	case '\r': *t = K_ENTER; return 1;
	case '\n': *t = K_NEWLINE; return 1;
	case '\t': *t = K_TAB; return 1;
	case 0x03: *t = K_CTRL_C; return 1;
	case 0x04: *t = K_CTRL_D; return 1;
	case 0x0c: *t = K_REDRAW; return 1;
	case 0x14: *t = K_CTRL_T; return 1;
	case 0x1a: *t = K_SUSPEND; return 1;
	case 0x7f:
	case 0x08: *t = K_BACKSPACE; return 1;
	case 0x1b: *t = K_ESC; return 1;
	}
	return 0;
}

static void decode(struct keys *k, const char *s, size_t n, key_fn fn, void *ctx)
{
	size_t i = 0;
	static const char end_marker[] = "\x1b[201~";

	while (i < n) {
		if (k->in_paste) {
			/* look for the end marker, which may be split across reads:
			 * keep a possible partial marker pending */
			const char *e = memmem(s + i, n - i, end_marker, 6);
			if (e) {
				paste_add(k, s + i, (size_t)(e - (s + i)));
				k->in_paste = 0;
				emit(fn, ctx, K_PASTE, k->paste.buf, k->paste.len);
				strbuf_reset(&k->paste);
				i = (size_t)(e - s) + 6;
				continue;
			}
			size_t keep = 0;
			for (size_t m = 5; m > 0; m--)
				if (n - i >= m && !memcmp(s + n - m, end_marker, m)) {
					keep = m;
					break;
				}
			paste_add(k, s + i, n - i - keep);
			strbuf_reset(&k->pending);
			strbuf_add(&k->pending, s + n - keep, keep);
			return;
		}
		enum key_type t;
		unsigned char c = (unsigned char)s[i];
		if (c == 0x1b) {
			size_t used = escape(k, s + i, n - i, fn, ctx);
			if (!used) {
				strbuf_reset(&k->pending);
				strbuf_add(&k->pending, s + i, n - i);
				return;
			}
			i += used;
			continue;
		}
		if (special(c, &t)) {
			emit(fn, ctx, t, s + i, 1);
			i++;
			continue;
		}
		/* a run of ordinary bytes goes to readline in one piece */
		size_t j = i + 1;
		while (j < n && !special((unsigned char)s[j], &t))
			j++;
		emit(fn, ctx, K_BYTES, s + i, j - i);
		i = j;
	}
}

void keys_feed(struct keys *k, const char *buf, size_t n, key_fn fn, void *ctx)
{
	if (!k->pending.len) {
		decode(k, buf, n, fn, ctx);
		return;
	}
	/* join the pending start of a sequence with the new bytes */
	struct strbuf all = STRBUF_INIT;
	strbuf_add(&all, k->pending.buf, k->pending.len);
	strbuf_add(&all, buf, n);
	strbuf_reset(&k->pending);
	decode(k, all.buf, all.len, fn, ctx);
	strbuf_release(&all);
}

void keys_flush(struct keys *k, key_fn fn, void *ctx)
{
	if (!keys_waiting(k))
		return;
	struct strbuf p = STRBUF_INIT;
	strbuf_add(&p, k->pending.buf, k->pending.len);
	strbuf_reset(&k->pending);
	if (p.len == 1)
		emit(fn, ctx, K_ESC, p.buf, 1);
	else
		emit(fn, ctx, K_BYTES, p.buf, p.len);
	strbuf_release(&p);
}
