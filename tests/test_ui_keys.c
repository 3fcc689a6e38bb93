/* ui/keys: escape sequences, bracketed paste and mouse reports split at any byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"

/* Record keys as "TYPE:bytes" joined by spaces; adjacent BYTES records are
 * merged, since how a run of bytes is split does not matter to readline. */
static char log_buf[4096];
static int last_was_bytes;

static const char *names[] = {
	"BYTES", "PASTE", "ENTER", "NL", "TAB", "ESC", "C-C", "C-D", "PGUP", "PGDN",
	"HOME", "END", "UP", "DOWN", "WUP", "WDOWN", "BS", "IGN", "REDRAW", "SUSPEND",
};

static void rec(void *ctx, const struct key *k)
{
	(void)ctx;
	char tmp[512];
	if (k->type == K_BYTES || k->type == K_PASTE) {
		/* show escapes as ^[ to keep the expectations readable */
		size_t o = 0;
		for (size_t i = 0; i < k->len && o < sizeof(tmp) - 3; i++) {
			if (k->bytes[i] == 0x1b) {
				tmp[o++] = '^';
				tmp[o++] = '[';
			} else {
				tmp[o++] = k->bytes[i];
			}
		}
		tmp[o] = '\0';
		if (k->type == K_BYTES && last_was_bytes) {
			strncat(log_buf, tmp, sizeof(log_buf) - strlen(log_buf) - 1);
			return;
		}
		last_was_bytes = k->type == K_BYTES;
		snprintf(log_buf + strlen(log_buf), sizeof(log_buf) - strlen(log_buf), "%s%s:%s",
			 log_buf[0] ? " " : "", names[k->type], tmp);
	} else {
		last_was_bytes = 0;
		snprintf(log_buf + strlen(log_buf), sizeof(log_buf) - strlen(log_buf), "%s%s",
			 log_buf[0] ? " " : "", names[k->type]);
	}
}

static const char *decode_all(const char *s)
{
	struct keys k;
	keys_init(&k);
	log_buf[0] = '\0';
	last_was_bytes = 0;
	keys_feed(&k, s, strlen(s), rec, NULL);
	keys_flush(&k, rec, NULL);
	keys_release(&k);
	return log_buf;
}

/* The same input fed one byte at a time must decode the same way. */
static const char *decode_bytewise(const char *s)
{
	struct keys k;
	keys_init(&k);
	log_buf[0] = '\0';
	last_was_bytes = 0;
	for (size_t i = 0; s[i]; i++)
		keys_feed(&k, s + i, 1, rec, NULL);
	keys_flush(&k, rec, NULL);
	keys_release(&k);
	return log_buf;
}

static void test_plain_and_controls(void **state)
{
	(void)state;
	assert_string_equal(decode_all("hi\r"), "BYTES:hi ENTER");
	assert_string_equal(decode_all("a\nb\t\x03\x04\x7f"), "BYTES:a NL BYTES:b TAB C-C C-D BS");
	assert_string_equal(decode_all("x\x0cy\x1a"), "BYTES:x REDRAW BYTES:y SUSPEND");
	assert_string_equal(decode_all("h\xc3\xa9llo"), "BYTES:h\xc3\xa9llo");
}

static void test_escapes(void **state)
{
	(void)state;
	assert_string_equal(decode_all("\x1b[5~\x1b[6~"), "PGUP PGDN");
	assert_string_equal(decode_all("\x1b[H\x1b[F\x1bOH\x1b[4~"), "HOME END HOME END");
	assert_string_equal(decode_all("\x1b[A\x1bOB"), "UP DOWN");
	assert_string_equal(decode_all("\x1b[1;5C"), "BYTES:^[[1;5C");
	assert_string_equal(decode_all("\x1b\r"), "NL");
	assert_string_equal(decode_all("\x1b" "b"), "BYTES:^[b");
	/* a lone escape is only known when no more bytes come */
	assert_string_equal(decode_all("\x1b"), "ESC");
	assert_string_equal(decode_all("\x1b\x1b[A"), "ESC UP");
	/* mouse wheel (SGR), clicks ignored */
	assert_string_equal(decode_all("\x1b[<64;10;5M\x1b[<65;10;5M\x1b[<0;1;1M"), "WUP WDOWN IGN");
}

static void test_paste(void **state)
{
	(void)state;
	assert_string_equal(decode_all("\x1b[200~line one\r\n/quit\rx\x1b[201~y"),
			    "PASTE:line one\n/quit\nx BYTES:y");
	/* escape sequences inside a paste are text */
	assert_string_equal(decode_all("\x1b[200~a\x1b[Ab\x1b[201~"), "PASTE:a^[[Ab");
}

static void test_split(void **state)
{
	(void)state;
	const char *inputs[] = {
		"ab\x1b[5~c\r",
		"\x1b[200~/quit\nnext\x1b[201~\r",
		"\x1b[<64;1;1M\x1bOH\x1b\r\x03",
	};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		char whole[512];
		strcpy(whole, decode_all(inputs[i]));
		assert_string_equal(decode_bytewise(inputs[i]), whole);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_controls),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_paste),
		cmocka_unit_test(test_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
