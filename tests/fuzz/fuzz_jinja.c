/* libFuzzer target for the Jinja interpreter: any template and conversation render or fail with one message, within the limits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"
#include "json.h"
#include "report.h"

/*
 * The input is a template, a NUL byte and a conversation in JSON (a list of
 * messages or an object of variables); without the NUL it is a template
 * rendered over a fixed conversation.  The first byte of the conversation
 * part, when it is '0' or '1', sets add_generation_prompt.
 */

static const char default_conversation[] =
	"[{\"role\": \"system\", \"content\": \"Be brief.\"},"
	" {\"role\": \"user\", \"content\": \"Hi <|im_end|>\"},"
	" {\"role\": \"assistant\", \"content\": \"<think>x</think>Hello\"},"
	" {\"role\": \"user\", \"content\": \"And then?\"}]";

static void one_line(void)
{
	const char *msg = error_message();
	if (!*msg || strchr(msg, '\n'))
		abort(); /* every failure is one non-empty line */
}

static struct jinja_value *from_json(struct jinja_ctx *c, const struct json *j, int depth)
{
	if (depth > 40)
		return jinja_none(c);
	switch (j->type) {
	case JSON_NULL: return jinja_none(c);
	case JSON_BOOL: return jinja_bool(c, j->boolean);
	case JSON_NUMBER:
		if (j->number == (double)(int64_t)j->number && j->number > -1e15 && j->number < 1e15)
			return jinja_int(c, (int64_t)j->number);
		return jinja_float(c, j->number);
	case JSON_STRING: return jinja_string(c, j->str, j->str_len, JINJA_INPUT);
	case JSON_ARRAY: {
		struct jinja_value *l = jinja_list(c);
		for (size_t i = 0; l && i < j->n; i++)
			if (jinja_list_append(c, l, from_json(c, &j->items[i], depth + 1)) < 0)
				abort();
		return l;
	}
	case JSON_OBJECT: {
		struct jinja_value *d = jinja_dict(c);
		for (size_t i = 0; d && i < j->n; i++)
			if (jinja_dict_set(c, d, j->keys[i], from_json(c, &j->items[i], depth + 1)) < 0)
				abort();
		return d;
	}
	}
	return jinja_none(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *)data;
	const char *nul = memchr(src, 0, size);
	size_t tlen = nul ? (size_t)(nul - src) : size;
	const char *conv = nul ? nul + 1 : default_conversation;
	size_t clen = nul ? size - tlen - 1 : strlen(default_conversation);
	int gen = 1;
	if (clen && (conv[0] == '0' || conv[0] == '1')) {
		gen = conv[0] == '1';
		conv++;
		clen--;
	}

	error_clear();
	struct jinja_template *t = jinja_parse(src, tlen);
	if (!t) {
		one_line();
		return 0;
	}
	jinja_uses(t, "enable_thinking");
	struct jinja_ctx *c = jinja_ctx_new();
	struct json *j = json_parse(conv, clen);
	if (j) {
		struct jinja_value *v = from_json(c, j, 0);
		if (j->type == JSON_OBJECT) {
			for (size_t i = 0; i < j->n; i++)
				jinja_ctx_set(c, j->keys[i], from_json(c, &j->items[i], 0));
		} else {
			jinja_ctx_set(c, "messages", v);
		}
		json_free(j);
	}
	error_clear();
	jinja_ctx_set(c, "bos_token", jinja_string(c, "<s>", 3, JINJA_TEMPLATE));
	jinja_ctx_set(c, "eos_token", jinja_string(c, "</s>", 4, JINJA_TEMPLATE));
	jinja_ctx_set(c, "add_generation_prompt", jinja_bool(c, gen));

	/* limits small enough that every input runs in milliseconds */
	struct jinja_limits lim = { 200000, 1 << 20, 64 << 20, 200 };
	struct jinja_output out = JINJA_OUTPUT_INIT;
	if (jinja_render(t, c, 1721995200, &lim, &out) == 0) {
		/* the ranges are sorted, disjoint, inside the text, never empty */
		size_t end = 0;
		for (size_t i = 0; i < out.n_ranges; i++) {
			if ((i && out.ranges[i][0] <= end) || out.ranges[i][1] <= out.ranges[i][0] ||
			    out.ranges[i][1] > out.text.len)
				abort();
			end = out.ranges[i][1];
		}
		if (out.text.len > lim.max_output)
			abort();
	} else {
		one_line();
	}
	jinja_output_release(&out);
	jinja_ctx_free(c);
	jinja_free(t);
	return 0;
}
