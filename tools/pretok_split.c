/* Print the words engine/tokenizer.c's pre-tokenizer cuts each input string into (for tools/check_pretokenizers.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "tokenizer.h"

/*
 * usage: pretok_split PRE < strings, each ended by a NUL byte
 * Prints one line per string: the byte offsets where its words end.
 * Build: make && cc -Iengine -Ilib -o pretok_split tools/pretok_split.c build/libpalaver.a -lm -pthread
 */
int main(int argc, char **argv)
{
	static struct gguf_str tok[256];
	static char txt[256][4];
	static char buf[1 << 24];
	static size_t ends[1 << 16];

	if (argc != 2) {
		fprintf(stderr, "usage: pretok_split PRE < NUL-terminated strings\n");
		return 2;
	}
	/* a vocabulary of the 256 byte characters is all the splitter needs */
	for (int b = 0; b < 256; b++) {
		char s[4];
		size_t n = 0;
		unsigned c = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
				     ? (unsigned)b
			     : b <= 0x20 ? 0x100u + b
			     : b <= 0xA0 ? 0x100u + 33 + (b - 0x7Fu)
					 : 0x143u;
		if (c < 0x80) {
			s[n++] = (char)c;
		} else {
			s[n++] = (char)(0xC0 | (c >> 6));
			s[n++] = (char)(0x80 | (c & 0x3F));
		}
		memcpy(txt[b], s, n);
		tok[b].data = txt[b];
		tok[b].len = n;
	}
	struct tokenizer_spec spec;
	tokenizer_spec_init(&spec);
	spec.model = "gpt2";
	spec.pre = argv[1];
	spec.n_tokens = 256;
	spec.tokens = tok;
	struct tokenizer *t = tokenizer_new(&spec);
	if (!t) {
		fprintf(stderr, "pretok_split: %s\n", error_message());
		return 1;
	}
	size_t n = fread(buf, 1, sizeof(buf), stdin);
	for (size_t s = 0; s < n;) {
		size_t e = s;
		while (e < n && buf[e])
			e++;
		int k = tokenizer_split(t, buf + s, e - s, ends, 1 << 16);
		for (int i = 0; i < k; i++)
			printf("%zu ", ends[i]);
		printf("\n");
		s = e + 1;
	}
	tokenizer_free(t);
	return 0;
}
