/* Untrusted text (model files, imported sessions, model output) on its way to a terminal or a JSON string. */
#ifndef PALAVER_UNTRUSTED_H
#define PALAVER_UNTRUSTED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "strbuf.h"

/*
 * Text that palaver did not write -- GGUF metadata, token pieces and so the
 * model's replies, imported session titles and messages -- may hold bytes a
 * terminal acts on: ESC sequences that move the cursor, retitle the window
 * or rewrite what was printed, and C1 controls (0x9b is CSI on some
 * terminals).  Everything that prints such text to a terminal goes through
 * untrusted_print() (or untrusted_add() into a buffer bound for one), as
 * less(1) does: C0 controls and DEL are shown in caret notation (ESC as
 * "^["), C1 controls and bytes that are not UTF-8 as U+FFFD.  Files and
 * pipes get the bytes unchanged, since a format may need them.
 */

enum untrusted_flags {
	UNTRUSTED_MULTILINE = 1, /* keep \n and \t (message text); else ^J and ^I */
};

/* The length (1 to 4) of the well-formed UTF-8 sequence at s[0..n) and its
 * code point in *cp; 0 when s[0] starts none (a stray continuation byte,
 * an overlong form, a surrogate, past U+10FFFF, cut short).  n > 0. */
size_t utf8_valid(const char *s, size_t n, uint32_t *cp);

/* Append s[0..n) to sb made safe for a terminal (see above). */
void untrusted_add(struct strbuf *sb, const char *s, size_t n, unsigned flags);

/* 1 when what is written to f reaches a terminal. */
int untrusted_tty(FILE *f);

/* The printer: s[0..n) to f, through untrusted_add() when f is a terminal,
 * unchanged otherwise. */
void untrusted_print(FILE *f, const char *s, size_t n, unsigned flags);

/* s[0..n) between single quotes for a listing of pieces (a token's piece
 * may be part of a character): \n, \t and \r as such, control
 * characters (C1 included) and bytes that are not UTF-8 as \xNN, so no
 * piece reaches the terminal as an escape sequence, wherever f goes. */
void untrusted_print_quoted(FILE *f, const char *s, size_t n);

#endif
