/* palaver template: print the prompt a model's chat template makes of a conversation (or its token ids). */
#include "chat_template.h"
#include "commands.h"
#include "config.h"
#include "engine.h"
#include "gguf.h"
#include "jinja.h"
#include "json.h"
#include "options.h"
#include "prompt.h"
#include "report.h"
#include "strbuf.h"
#include "tokenizer.h"
#include "untrusted.h"
#include "xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"usage: palaver template [-m FILE] [--chat-template NAME|FILE] [--no-generation-prompt]\n"
	"                        [--think on|off] [--reasoning-effort LEVEL] [--tokens]\n"
	"                        [CONVERSATION]\n"
	"\n"
	"Render a conversation with the model's chat template and print the\n"
	"prompt exactly as the model would read it (nothing added, no final\n"
	"newline).  The conversation is JSON, from the file CONVERSATION or\n"
	"standard input: a list of messages [{\"role\": ..., \"content\": ...}], or\n"
	"an object {\"messages\": [...], ...} whose other members are template\n"
	"variables (tools, documents, date_string, ...).\n"
	"\n"
	"  -m, --model FILE          the GGUF model (its template, BOS and EOS)\n"
	"      --chat-template NAME  a format name, or a file with a Jinja template\n"
	"      --no-generation-prompt  end after the last message (no open\n"
	"                            assistant turn)\n"
	"      --think on|off        set enable_thinking for templates that read it\n"
	"                            (auto, the default, leaves it to the template)\n"
	"      --reasoning-effort LEVEL  low, medium or high: reasoning_effort for\n"
	"                            templates that read it (gpt-oss; auto leaves it)\n"
	"      --tokens              print the token ids instead, one per line with\n"
	"                            the piece; control tokens are marked\n"
	"  -h, --help                show this help\n";

/* A JSON value as a template value; numbers keep Python's int/float split. */
static struct jinja_value *from_json(struct jinja_ctx *c, const struct json *j, const char *src)
{
	switch (j->type) {
	case JSON_NULL: return jinja_none(c);
	case JSON_BOOL: return jinja_bool(c, j->boolean);
	case JSON_NUMBER: {
		int is_float = 0;
		for (size_t i = j->start; i < j->end; i++)
			is_float |= src[i] == '.' || src[i] == 'e' || src[i] == 'E';
		if (!is_float && j->number >= -9.2e18 && j->number <= 9.2e18) {
			char *end;
			errno = 0;
			long long v = strtoll(src + j->start, &end, 10);
			if (!errno)
				return jinja_int(c, v);
		}
		return jinja_float(c, j->number);
	}
	case JSON_STRING: return jinja_string(c, j->str, j->str_len, JINJA_INPUT);
	case JSON_ARRAY: {
		struct jinja_value *l = jinja_list(c);
		for (size_t i = 0; l && i < j->n; i++)
			if (jinja_list_append(c, l, from_json(c, &j->items[i], src)) < 0)
				return NULL;
		return l;
	}
	case JSON_OBJECT: {
		struct jinja_value *d = jinja_dict(c);
		for (size_t i = 0; d && i < j->n; i++)
			if (jinja_dict_set(c, d, j->keys[i], from_json(c, &j->items[i], src)) < 0)
				return NULL;
		return d;
	}
	}
	return NULL;
}

/* Messages for the built-in formats; *odd names a role they cannot render. */
static struct engine_message *to_messages(const struct json *msgs, const char **odd)
{
	struct engine_message *m = xcalloc(msgs->n ? msgs->n : 1, sizeof(*m));
	*odd = NULL;
	for (size_t i = 0; i < msgs->n; i++) {
		const struct json *role = json_get(&msgs->items[i], "role");
		const struct json *content = json_get(&msgs->items[i], "content");
		const char *r = role && role->type == JSON_STRING ? role->str : "";
		if (!strcmp(r, "system"))
			m[i].role = ENGINE_ROLE_SYSTEM;
		else if (!strcmp(r, "user"))
			m[i].role = ENGINE_ROLE_USER;
		else if (!strcmp(r, "assistant"))
			m[i].role = ENGINE_ROLE_ASSISTANT;
		else if (!*odd)
			*odd = *r ? r : "(none)";
		m[i].text = content && content->type == JSON_STRING ? content->str : "";
	}
	return m;
}

/* Parse the conversation: messages (an array) and the extra variables. */
static int read_conversation(const struct strbuf *in, const char *name, struct json **root,
			     const struct json **msgs)
{
	*root = json_parse(in->buf, in->len);
	if (!*root) {
		report("'%s': %s", name, error_message());
		return -1;
	}
	*msgs = *root;
	if ((*root)->type == JSON_OBJECT) {
		*msgs = json_get(*root, "messages");
		if (!*msgs) {
			report("'%s': the object has no \"messages\" member", name);
			return -1;
		}
	}
	if ((*msgs)->type != JSON_ARRAY) {
		report("'%s': the messages are not a list", name);
		return -1;
	}
	for (size_t i = 0; i < (*msgs)->n; i++)
		if ((*msgs)->items[i].type != JSON_OBJECT) {
			report("'%s': message %zu is not an object", name, i + 1);
			return -1;
		}
	return 0;
}

/* The command line: 0 to render, 1 after --help, or -1 after saying what
 * is wrong (exit 2).  -m, --chat-template, --think and the other common
 * flags land in cfg. */
static int parse_args(int argc, char **argv, struct config *cfg, const char **file, int *gen,
		      int *tokens)
{
	int i, more;
	for (i = 1; (more = options_next(argc, argv, &i, usage)) > 0; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--no-generation-prompt")) {
			*gen = 0;
		} else if (!strcmp(a, "--tokens")) {
			*tokens = 1;
		} else {
			int r = config_parse_common_flag(cfg, &i, argc, argv);
			if (r < 0)
				return report_failure(-1);
			if (r == 0) {
				report_usage_with(usage, "unknown option '%s'", a);
				return -1;
			}
		}
	}
	if (more < 0)
		return 1;
	if (i < argc)
		*file = argv[i++];
	if (i < argc) {
		report_usage_with(usage, "give one conversation file");
		return -1;
	}
	return 0;
}

/* The template's variables: messages, and the conversation object's other
 * members (tools, documents, ...).  0, or -1 with error(). */
static int set_variables(struct jinja_ctx *ctx, const struct json *root, const struct json *msgs,
			 const char *src)
{
	struct jinja_value *mv = ctx ? from_json(ctx, msgs, src) : NULL;
	if (!mv || jinja_ctx_set(ctx, "messages", mv) < 0)
		return -1;
	if (root->type == JSON_OBJECT)
		for (size_t k = 0; k < root->n; k++)
			if (strcmp(root->keys[k], "messages") &&
			    jinja_ctx_set(ctx, root->keys[k],
					  from_json(ctx, &root->items[k], src)) < 0)
				return -1;
	return 0;
}

/* One token a line: its id, its piece quoted, and whether it is a control token. */
static void print_tokens(const struct tokenizer *tok, const int32_t *ids, int n)
{
	for (int k = 0; k < n; k++) {
		size_t len;
		const char *s = tokenizer_piece(tok, ids[k], &len);
		printf("%6d -> ", ids[k]);
		untrusted_print_quoted(stdout, s, len);
		if (tokenizer_is_control(tok, ids[k]))
			fputs("  (control)", stdout);
		putchar('\n');
	}
}

int cmd_template(int argc, char **argv, struct config *cfg)
{
	const char *file = NULL;
	int gen = 1, tokens = 0;
	int parsed = parse_args(argc, argv, cfg, &file, &gen, &tokens);
	if (parsed)
		return parsed > 0 ? EXIT_OK : EXIT_USAGE;
	const char *model = cfg->model && *cfg->model ? cfg->model : NULL; /* -m '': none */
	const char *setting = cfg->chat_template ? cfg->chat_template : "auto";
	if (!model && tokens)
		return report_usage("--tokens needs a model (-m FILE)");
	if (!model && (!strcmp(setting, "auto") || !*setting))
		return report_usage("no model and no --chat-template: nothing to render with");

	struct strbuf in = STRBUF_INIT;
	const char *name = file && strcmp(file, "-") ? file : "standard input";
	/* a conversation is held to a session import's limit */
	if (file && strcmp(file, "-") ? strbuf_read_file(&in, file, READ_MAX_IMPORT) < 0
				      : strbuf_read_fd(&in, STDIN_FILENO, READ_MAX_IMPORT) < 0) {
		char why[64];
		report("cannot read '%s': %s", name,
		       strbuf_read_failure(errno, READ_MAX_IMPORT, why, sizeof(why)));
		strbuf_release(&in);
		return EXIT_RUNTIME;
	}

	int ret = EXIT_RUNTIME;
	struct json *root = NULL;
	const struct json *msgs;
	struct gguf *g = NULL;
	struct tokenizer *tok = NULL;
	struct prompt_template *pt = NULL;
	struct engine_message *em = NULL;
	struct jinja_ctx *ctx = NULL;
	struct chat_prompt p = CHAT_PROMPT_INIT;
	char *note = NULL;
	int32_t *ids = NULL;
	int n_ids = 0;

	if (read_conversation(&in, name, &root, &msgs) < 0) {
		ret = EXIT_USAGE;
		goto out;
	}
	if (model) {
		g = gguf_open(model);
		tok = g ? tokenizer_open(g, 1) : NULL;
		if (!tok) {
			report("%s", error_message());
			goto out;
		}
	}
	pt = prompt_template_open(g, tok, setting);
	if (!pt) {
		report("%s", error_message());
		ret = EXIT_USAGE;
		goto out;
	}
	if (prompt_template_note(pt))
		warning("%s", prompt_template_note(pt));
	if (prompt_template_defaulted(pt))
		report("'%s' has no chat template: the texts as they are (raw completion)", model);

	const char *odd;
	em = to_messages(msgs, &odd);
	ctx = jinja_ctx_new();
	if (set_variables(ctx, root, msgs, in.buf) < 0) {
		report("%s", error_message());
		goto out;
	}
	if (odd && !prompt_template_is_jinja(pt)) {
		report("the '%s' format has no role '%s'", prompt_template_name(pt), odd);
		ret = EXIT_USAGE;
		goto out;
	}
	int think = cfg->think == THINK_ON ? 1 : cfg->think == THINK_OFF ? 0 : -1;
	static const char *const efforts[] = { NULL, "low", "medium", "high" };
	struct prompt_opts po = { gen, think, ctx, efforts[cfg->reasoning_effort] };
	if (prompt_render_text(pt, em, (int)msgs->n, &po, &p, &note) < 0) {
		report("%s", error_message());
		goto out;
	}
	if (note) {
		if (odd) {
			report("%s, which has no role '%s'", note, odd);
			goto out;
		}
		warning("%s", note);
	}
	if (!tokens) {
		/* the template comes from the model file: on a terminal, made safe */
		untrusted_print(stdout, p.text.buf, p.text.len, UNTRUSTED_MULTILINE);
	} else {
		if (prompt_tokenize(pt, &p, &ids, &n_ids) < 0) {
			report("%s", error_message());
			goto out;
		}
		print_tokens(tok, ids, n_ids);
	}
	ret = out_check() < 0 ? EXIT_RUNTIME : EXIT_OK;
out:
	free(ids);
	free(note);
	chat_prompt_release(&p);
	jinja_ctx_free(ctx);
	free(em);
	prompt_template_free(pt);
	tokenizer_free(tok);
	if (g)
		gguf_close(g);
	json_free(root);
	strbuf_release(&in);
	return ret;
}
