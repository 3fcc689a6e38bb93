/* Chat templates: render a conversation in each model family's prompt format, detect the family from a GGUF. */
#include "chat_template.h"

#include "report.h"
#include "tokenizer.h"
#include "xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 *
 * The formats follow the families' reference Jinja templates (as rendered
 * by Hugging Face's apply_chat_template, which llama.cpp's test suite also
 * records) for the conversation system / user / assistant / user ... with
 * the generation prompt: spacing, newlines, trimming, where a system prompt
 * goes when the family has no system role, and the BOS/EOS texts written
 * between turns.  Only the very first BOS is left out, because the
 * tokenizer adds it (TOKENIZE_ADD_BOS) exactly when the vocabulary asks.
 *
 * Every byte the template writes is recorded as a range in the prompt, so
 * that control tokens are recognised there and nowhere else: a user who
 * types "<|im_end|>" must not end the turn.
 */

static const char *const names[CHAT_TEMPLATE_COUNT] = {
	[CHAT_TEMPLATE_NONE] = "none",
	[CHAT_TEMPLATE_CHATML] = "chatml",
	[CHAT_TEMPLATE_LLAMA2] = "llama2",
	[CHAT_TEMPLATE_LLAMA3] = "llama3",
	[CHAT_TEMPLATE_MISTRAL_V1] = "mistral-v1",
	[CHAT_TEMPLATE_MISTRAL_V3] = "mistral-v3",
	[CHAT_TEMPLATE_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
	[CHAT_TEMPLATE_MISTRAL_V7] = "mistral-v7",
	[CHAT_TEMPLATE_PHI3] = "phi3",
	[CHAT_TEMPLATE_PHI4] = "phi4",
	[CHAT_TEMPLATE_GEMMA] = "gemma",
	[CHAT_TEMPLATE_ZEPHYR] = "zephyr",
	[CHAT_TEMPLATE_DEEPSEEK] = "deepseek",
	[CHAT_TEMPLATE_DEEPSEEK2] = "deepseek2",
	[CHAT_TEMPLATE_DEEPSEEK3] = "deepseek3",
	[CHAT_TEMPLATE_VICUNA] = "vicuna",
};

static const struct {
	const char *alias;
	enum chat_template_id id;
} aliases[] = {
	{ "raw", CHAT_TEMPLATE_NONE },
	{ "llama-2", CHAT_TEMPLATE_LLAMA2 },
	{ "llama-3", CHAT_TEMPLATE_LLAMA3 },
	{ "mistral", CHAT_TEMPLATE_MISTRAL_V3 },
	{ "phi-3", CHAT_TEMPLATE_PHI3 },
	{ "phi-4", CHAT_TEMPLATE_PHI4 },
	{ "deepseek-coder", CHAT_TEMPLATE_DEEPSEEK },
	{ "deepseek-v2", CHAT_TEMPLATE_DEEPSEEK2 },
	{ "deepseek-v3", CHAT_TEMPLATE_DEEPSEEK3 },
};

const char *chat_template_name(enum chat_template_id id)
{
	return (unsigned)id < CHAT_TEMPLATE_COUNT ? names[id] : "unknown";
}

int chat_template_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < CHAT_TEMPLATE_COUNT; i++)
		if (!strcmp(name, names[i]))
			return i;
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (!strcmp(name, aliases[i].alias))
			return (int)aliases[i].id;
	return -1;
}

const char *chat_template_names(void)
{
	return "none, chatml, llama2, llama3, mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7, "
	       "phi3, phi4, gemma, zephyr, deepseek, deepseek2, deepseek3, vicuna";
}

/* ---- detection ---------------------------------------------------------- */

static int has(const char *s, size_t n, const char *needle)
{
	return memmem(s, n, needle, strlen(needle)) != NULL;
}

int chat_template_detect(const char *t, size_t n)
{
	if (has(t, n, "<|im_sep|>"))
		return CHAT_TEMPLATE_PHI4;
	if (has(t, n, "<|im_start|>"))
		return CHAT_TEMPLATE_CHATML;
	if (has(t, n, "[INST]")) {
		if (has(t, n, "[SYSTEM_PROMPT]"))
			return CHAT_TEMPLATE_MISTRAL_V7;
		if (has(t, n, "<<SYS>>"))
			return CHAT_TEMPLATE_LLAMA2;
		if (has(t, n, "[AVAILABLE_TOOLS]") || has(t, n, "system_message")) {
			if (has(t, n, "' [INST] '") || has(t, n, "\" [INST] \""))
				return CHAT_TEMPLATE_MISTRAL_V1;
			if (has(t, n, "\"[INST]\"") || has(t, n, "'[INST]'"))
				return CHAT_TEMPLATE_MISTRAL_V3_TEKKEN;
			return CHAT_TEMPLATE_MISTRAL_V3;
		}
		return CHAT_TEMPLATE_MISTRAL_V1; /* the older Mistral templates, without a system role */
	}
	if (has(t, n, "<|start_header_id|>") && has(t, n, "<|end_header_id|>"))
		return CHAT_TEMPLATE_LLAMA3;
	if (has(t, n, "<start_of_turn>"))
		return CHAT_TEMPLATE_GEMMA;
	if (has(t, n, "<|assistant|>") && has(t, n, "<|end|>"))
		return CHAT_TEMPLATE_PHI3;
	if (has(t, n, "<|user|>"))
		return CHAT_TEMPLATE_ZEPHYR;
	if (has(t, n, "### Instruction:"))
		return CHAT_TEMPLATE_DEEPSEEK;
	if (has(t, n,
		"<\xef\xbd\x9c"
		"User\xef\xbd\x9c>")) /* <｜User｜> */
		return CHAT_TEMPLATE_DEEPSEEK3;
	if (has(t, n, "'User: '") || has(t, n, "\"User: \""))
		return CHAT_TEMPLATE_DEEPSEEK2;
	if (has(t, n, "USER: ") && has(t, n, "ASSISTANT:"))
		return CHAT_TEMPLATE_VICUNA;
	return -1;
}

static int read_setting_file(const char *path, struct strbuf *sb)
{
	if (strbuf_read_file(sb, path, READ_MAX_TEMPLATE) < 0)
		return -1;
	return 0;
}

int chat_template_choose(const struct gguf *g, const char *setting, enum chat_template_id *out,
			 const char **why)
{
	*why = NULL;
	if (setting && *setting && strcmp(setting, "auto")) {
		int id = chat_template_from_name(setting);
		if (id >= 0) {
			*out = (enum chat_template_id)id;
			return 0;
		}
		struct strbuf sb = STRBUF_INIT;
		if (read_setting_file(setting, &sb) < 0) {
			int e = errno;
			strbuf_release(&sb);
			if (e == ENOENT)
				return error(
					"unknown chat template '%s' (not a file, nor one of: %s)",
					setting, chat_template_names());
			char reason[64];
			return error(
				"cannot read chat template '%s': %s", setting,
				strbuf_read_failure(e, READ_MAX_TEMPLATE, reason, sizeof(reason)));
		}
		/* a file holds a template name, or a Jinja template to recognise */
		strbuf_trim(&sb);
		id = chat_template_from_name(sb.buf);
		if (id < 0)
			id = chat_template_detect(sb.buf, sb.len);
		strbuf_release(&sb);
		if (id < 0)
			return error("'%s': unrecognised chat template (known: %s)", setting,
				     chat_template_names());
		*out = (enum chat_template_id)id;
		return 0;
	}

	struct gguf_str s;
	if (!g || !gguf_find_kv(g, "tokenizer.chat_template")) {
		*out = CHAT_TEMPLATE_NONE;
		*why = "the model has no chat template: raw completion (set chat_template to choose one)";
		return 0;
	}
	if (gguf_get_str(g, "tokenizer.chat_template", &s) < 0)
		return -1;
	int id = chat_template_detect(s.data, s.len);
	if (id < 0)
		return error(
			"'%s': unrecognised tokenizer.chat_template; choose one with --chat-template "
			"(%s)",
			gguf_path(g), chat_template_names());
	*out = (enum chat_template_id)id;
	return 0;
}

/* ---- rendering ---------------------------------------------------------- */

void chat_prompt_release(struct chat_prompt *p)
{
	strbuf_release(&p->text);
	free(p->ranges);
	p->ranges = NULL;
	p->n_ranges = p->alloc = 0;
}

/* Template text: appended and recorded as a range (merged with the last
 * range when they touch). */
static void lit_n(struct chat_prompt *p, const char *s, size_t n)
{
	size_t start = p->text.len;
	if (!n)
		return;
	strbuf_add(&p->text, s, n);
	if (p->n_ranges && p->ranges[p->n_ranges - 1][1] == start) {
		p->ranges[p->n_ranges - 1][1] = p->text.len;
		return;
	}
	ALLOC_GROW(p->ranges, p->n_ranges + 1, p->alloc);
	p->ranges[p->n_ranges][0] = start;
	p->ranges[p->n_ranges][1] = p->text.len;
	p->n_ranges++;
}

static void lit(struct chat_prompt *p, const char *s)
{
	lit_n(p, s, strlen(s));
}

/* Message text: appended, never a control token. */
static void txt_n(struct chat_prompt *p, const char *s, size_t n)
{
	strbuf_add(&p->text, s, n);
}

static void txt(struct chat_prompt *p, const char *s)
{
	txt_n(p, s, strlen(s));
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Jinja's trim / Python's strip (ASCII white space). */
static void txt_trim(struct chat_prompt *p, const char *s, int left, int right)
{
	size_t n = strlen(s);
	while (left && n && is_space(*s))
		s++, n--;
	while (right && n && is_space(s[n - 1]))
		n--;
	txt_n(p, s, n);
}

static const char *role_name(enum chat_role r)
{
	return r == CHAT_ROLE_SYSTEM ? "system" : r == CHAT_ROLE_USER ? "user" : "assistant";
}

/* Index of the first system message, or n. */
static size_t first_system(const struct chat_message *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].role == CHAT_ROLE_SYSTEM)
			return i;
	return n;
}

static const char deepseek_coder_system[] =
	"You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek "
	"Company, and you only answer questions related to computer science. For politically sensitive "
	"questions, security and privacy issues, and other non-computer science questions, you will "
	"refuse to answer\n";

#define EOS_DEEPSEEK                                                                               \
	"<\xef\xbd\x9c"                                                                            \
	"end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

int chat_template_render(enum chat_template_id id, const struct chat_message *m, size_t n, int gen,
			 const struct chat_template_tokens *tok, struct chat_prompt *p)
{
	const char *bos = tok && tok->bos ? tok->bos : "<s>";
	const char *eos = tok && tok->eos ? tok->eos : "</s>";
	size_t sys = first_system(m, n);
	const char *sys_text = sys < n ? m[sys].content : NULL;
	int first_user = 1;

	for (size_t i = 0; i < n; i++) {
		if ((unsigned)m[i].role > CHAT_ROLE_ASSISTANT)
			return error("message %zu has an unknown role %d", i, (int)m[i].role);
		if (!m[i].content)
			return error("message %zu has no content", i);
	}
	if ((unsigned)id >= CHAT_TEMPLATE_COUNT)
		return error("unknown chat template %d", (int)id);

	switch (id) {
	case CHAT_TEMPLATE_NONE:
		for (size_t i = 0; i < n; i++)
			txt(p, m[i].content);
		break;

	case CHAT_TEMPLATE_CHATML:
		for (size_t i = 0; i < n; i++) {
			lit(p, "<|im_start|>");
			lit(p, role_name(m[i].role));
			lit(p, "\n");
			txt(p, m[i].content);
			lit(p, "<|im_end|>\n");
		}
		if (gen)
			lit(p, "<|im_start|>assistant\n");
		break;

	case CHAT_TEMPLATE_LLAMA2:
		/* Meta's template: the system prompt opens the first user turn
		 * inside <<SYS>>; each turn is BOS [INST] user [/INST] reply EOS */
		for (size_t i = 0; i < n; i++) {
			if (m[i].role == CHAT_ROLE_SYSTEM)
				continue;
			if (m[i].role == CHAT_ROLE_USER) {
				if (!first_user)
					lit(p, bos);
				lit(p, "[INST] ");
				if (first_user && sys_text) {
					lit(p, "<<SYS>>\n");
					txt(p, sys_text);
					lit(p, "\n<</SYS>>\n\n");
					txt_trim(p, m[i].content, 0, 1);
				} else {
					txt_trim(p, m[i].content, 1, 1);
				}
				lit(p, " [/INST]");
				first_user = 0;
			} else {
				lit(p, " ");
				txt_trim(p, m[i].content, 1, 1);
				lit(p, " ");
				lit(p, eos);
			}
		}
		break;

	case CHAT_TEMPLATE_LLAMA3:
		for (size_t i = 0; i < n; i++) {
			lit(p, "<|start_header_id|>");
			lit(p, role_name(m[i].role));
			lit(p, "<|end_header_id|>\n\n");
			txt_trim(p, m[i].content, 1, 1);
			lit(p, "<|eot_id|>");
		}
		if (gen)
			lit(p, "<|start_header_id|>assistant<|end_header_id|>\n\n");
		break;

	case CHAT_TEMPLATE_MISTRAL_V1:
	case CHAT_TEMPLATE_MISTRAL_V3:
	case CHAT_TEMPLATE_MISTRAL_V3_TEKKEN: {
		/* v1 puts the system prompt into the first user turn, v3 and
		 * v3-tekken into the last message when it is a user turn */
		int v1 = id == CHAT_TEMPLATE_MISTRAL_V1,
		    tekken = id == CHAT_TEMPLATE_MISTRAL_V3_TEKKEN;
		for (size_t i = 0; i < n; i++) {
			if (m[i].role == CHAT_ROLE_SYSTEM)
				continue;
			if (m[i].role == CHAT_ROLE_USER) {
				lit(p, v1 ? " [INST] " : tekken ? "[INST]" : "[INST] ");
				if (sys_text && (v1 ? first_user : i == n - 1)) {
					txt(p, sys_text);
					lit(p, "\n\n");
				}
				txt(p, m[i].content);
				lit(p, v1 ? " [/INST]" : "[/INST]");
				first_user = 0;
			} else if (tekken) {
				txt(p, m[i].content);
				lit(p, eos);
			} else {
				lit(p, " ");
				if (v1)
					txt(p, m[i].content);
				else
					txt_trim(p, m[i].content, 1, 1);
				lit(p, eos);
			}
		}
		break;
	}

	case CHAT_TEMPLATE_MISTRAL_V7:
		for (size_t i = 0; i < n; i++) {
			if (m[i].role == CHAT_ROLE_SYSTEM) {
				lit(p, "[SYSTEM_PROMPT] ");
				txt(p, m[i].content);
				lit(p, "[/SYSTEM_PROMPT]");
			} else if (m[i].role == CHAT_ROLE_USER) {
				lit(p, "[INST] ");
				txt(p, m[i].content);
				lit(p, "[/INST]");
			} else {
				lit(p, " ");
				txt(p, m[i].content);
				lit(p, eos);
			}
		}
		break;

	case CHAT_TEMPLATE_PHI3:
		for (size_t i = 0; i < n; i++) {
			lit(p, "<|");
			lit(p, role_name(m[i].role));
			lit(p, "|>\n");
			txt(p, m[i].content);
			lit(p, "<|end|>\n");
		}
		if (gen)
			lit(p, "<|assistant|>\n");
		break;

	case CHAT_TEMPLATE_PHI4:
		for (size_t i = 0; i < n; i++) {
			lit(p, "<|im_start|>");
			lit(p, role_name(m[i].role));
			lit(p, "<|im_sep|>");
			txt(p, m[i].content);
			lit(p, "<|im_end|>");
		}
		if (gen)
			lit(p, "<|im_start|>assistant<|im_sep|>");
		break;

	case CHAT_TEMPLATE_GEMMA:
		/* no system role: the system prompt opens the first user turn */
		for (size_t i = 0; i < n; i++) {
			if (m[i].role == CHAT_ROLE_SYSTEM)
				continue;
			int user = m[i].role == CHAT_ROLE_USER;
			lit(p, user ? "<start_of_turn>user\n" : "<start_of_turn>model\n");
			if (user && first_user && sys_text) {
				txt_trim(p, sys_text, 1, 1);
				lit(p, "\n\n");
			}
			if (user)
				first_user = 0;
			txt_trim(p, m[i].content, 1, 1);
			lit(p, "<end_of_turn>\n");
		}
		if (gen)
			lit(p, "<start_of_turn>model\n");
		break;

	case CHAT_TEMPLATE_ZEPHYR:
		for (size_t i = 0; i < n; i++) {
			lit(p, "<|");
			lit(p, role_name(m[i].role));
			lit(p, "|>\n");
			txt(p, m[i].content);
			lit(p, eos);
			lit(p, "\n");
		}
		if (gen)
			lit(p, "<|assistant|>\n");
		break;

	case CHAT_TEMPLATE_DEEPSEEK:
		if (!sys_text)
			lit(p, deepseek_coder_system);
		for (size_t i = 0; i < n; i++) {
			if (m[i].role == CHAT_ROLE_SYSTEM) {
				txt(p, m[i].content);
			} else if (m[i].role == CHAT_ROLE_USER) {
				lit(p, "### Instruction:\n");
				txt(p, m[i].content);
				lit(p, "\n");
			} else {
				lit(p, "### Response:\n");
				txt(p, m[i].content);
				lit(p, "\n<|EOT|>\n");
			}
		}
		if (gen)
			lit(p, "### Response:\n");
		break;

	case CHAT_TEMPLATE_DEEPSEEK2:
		for (size_t i = 0; i < n; i++) {
			if (m[i].role == CHAT_ROLE_SYSTEM) {
				txt(p, m[i].content);
				lit(p, "\n\n");
			} else if (m[i].role == CHAT_ROLE_USER) {
				lit(p, "User: ");
				txt(p, m[i].content);
				lit(p, "\n\n");
			} else {
				lit(p, "Assistant: ");
				txt(p, m[i].content);
				lit(p, tok && tok->eos ? eos : EOS_DEEPSEEK);
			}
		}
		if (gen)
			lit(p, "Assistant:");
		break;

	case CHAT_TEMPLATE_DEEPSEEK3:
		/* the system prompt first, then <｜User｜>... <｜Assistant｜>...EOS */
		if (sys_text)
			txt(p, sys_text);
		for (size_t i = 0; i < n; i++) {
			if (m[i].role == CHAT_ROLE_SYSTEM)
				continue;
			if (m[i].role == CHAT_ROLE_USER) {
				lit(p, "<\xef\xbd\x9cUser\xef\xbd\x9c>");
				txt(p, m[i].content);
			} else {
				lit(p, "<\xef\xbd\x9c"
				       "Assistant\xef\xbd\x9c>");
				txt(p, m[i].content);
				lit(p, tok && tok->eos ? eos : EOS_DEEPSEEK);
			}
		}
		if (gen)
			lit(p, "<\xef\xbd\x9c"
			       "Assistant\xef\xbd\x9c>");
		break;

	case CHAT_TEMPLATE_VICUNA:
		for (size_t i = 0; i < n; i++) {
			if (m[i].role == CHAT_ROLE_SYSTEM) {
				txt(p, m[i].content);
				lit(p, "\n\n");
			} else if (m[i].role == CHAT_ROLE_USER) {
				lit(p, "USER: ");
				txt(p, m[i].content);
				lit(p, "\n");
			} else {
				lit(p, "ASSISTANT: ");
				txt(p, m[i].content);
				lit(p, eos);
				lit(p, "\n");
			}
		}
		if (gen)
			lit(p, "ASSISTANT:");
		break;

	case CHAT_TEMPLATE_COUNT: break;
	}
	return 0;
}

void chat_template_tokens_init(struct chat_template_tokens *ct, const struct tokenizer *t)
{
	size_t len;
	ct->bos = tokenizer_bos(t) >= 0 ? tokenizer_text(t, tokenizer_bos(t), &len) : NULL;
	ct->eos = tokenizer_eos(t) >= 0 ? tokenizer_text(t, tokenizer_eos(t), &len) : NULL;
}

int chat_prompt_tokenize(const struct chat_prompt *p, const struct tokenizer *t, int32_t *out,
			 int max)
{
	return tokenizer_encode_ranges(t, p->text.buf, p->text.len, TOKENIZE_ADD_BOS,
				       (const size_t(*)[2])p->ranges, p->n_ranges, out, max);
}

/* ---- stops -------------------------------------------------------------- */

static const char *const stops_none[] = { NULL };
static const char *const stops_chatml[] = { "<|im_end|>", "<|im_start|>", NULL };
static const char *const stops_inst[] = { "</s>", "[INST]", NULL };
static const char *const stops_llama3[] = { "<|eot_id|>", "<|eom_id|>", "<|start_header_id|>",
					    NULL };
static const char *const stops_phi3[] = { "<|end|>", "<|user|>", "<|endoftext|>", NULL };
static const char *const stops_gemma[] = { "<end_of_turn>", "<start_of_turn>", NULL };
static const char *const stops_zephyr[] = { "</s>", "<|user|>", NULL };
static const char *const stops_deepseek[] = { "<|EOT|>", "### Instruction:", NULL };
static const char *const stops_deepseek23[] = { EOS_DEEPSEEK, "<\xef\xbd\x9cUser\xef\xbd\x9c>",
						NULL };
static const char *const stops_vicuna[] = { "</s>", "\nUSER:", NULL };

const char *const *chat_template_stops(enum chat_template_id id)
{
	switch (id) {
	case CHAT_TEMPLATE_CHATML:
	case CHAT_TEMPLATE_PHI4: return stops_chatml;
	case CHAT_TEMPLATE_LLAMA2:
	case CHAT_TEMPLATE_MISTRAL_V1:
	case CHAT_TEMPLATE_MISTRAL_V3:
	case CHAT_TEMPLATE_MISTRAL_V3_TEKKEN:
	case CHAT_TEMPLATE_MISTRAL_V7: return stops_inst;
	case CHAT_TEMPLATE_LLAMA3: return stops_llama3;
	case CHAT_TEMPLATE_PHI3: return stops_phi3;
	case CHAT_TEMPLATE_GEMMA: return stops_gemma;
	case CHAT_TEMPLATE_ZEPHYR: return stops_zephyr;
	case CHAT_TEMPLATE_DEEPSEEK: return stops_deepseek;
	case CHAT_TEMPLATE_DEEPSEEK2:
	case CHAT_TEMPLATE_DEEPSEEK3: return stops_deepseek23;
	case CHAT_TEMPLATE_VICUNA: return stops_vicuna;
	case CHAT_TEMPLATE_NONE:
	case CHAT_TEMPLATE_COUNT: break;
	}
	return stops_none;
}

int chat_template_stop_ids(enum chat_template_id id, const struct tokenizer *t, int32_t *ids,
			   int max)
{
	int n = 0;
	int32_t nv = tokenizer_n_vocab(t);
	for (int32_t i = 0; i < nv; i++) {
		if (!tokenizer_is_eog(t, i))
			continue;
		if (n < max)
			ids[n] = i;
		n++;
	}
	for (const char *const *s = chat_template_stops(id); *s; s++) {
		int32_t tid = tokenizer_find(t, *s, strlen(*s));
		if (tid < 0 || tokenizer_is_eog(t, tid))
			continue;
		/* a stop string only counts as a token when it is one of the
		 * vocabulary's control tokens (else the text may be ordinary) */
		if (!tokenizer_is_control(t, tid))
			continue;
		int dup = 0;
		for (int k = 0; k < n && k < max; k++)
			dup |= ids[k] == tid;
		if (dup)
			continue;
		if (n < max)
			ids[n] = tid;
		n++;
	}
	return n;
}
