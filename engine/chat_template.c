/* Chat templates: render a conversation in each model family's prompt format, detect the family from a GGUF. */
#include "chat_template.h"

#include "reasoning.h"
#include "report.h"
#include "tokenizer.h"
#include "xalloc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
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
	[CHAT_TEMPLATE_HARMONY] = "harmony",
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
	{ "gpt-oss", CHAT_TEMPLATE_HARMONY },
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
	       "phi3, phi4, gemma, zephyr, deepseek, deepseek2, deepseek3, vicuna, harmony";
}

/* ---- detection ---------------------------------------------------------- */

static int has(const char *s, size_t n, const char *needle)
{
	return memmem(s, n, needle, strlen(needle)) != NULL;
}

int chat_template_detect(const char *t, size_t n)
{
	if (has(t, n, "<|channel|>") && has(t, n, "<|start|>"))
		return CHAT_TEMPLATE_HARMONY;
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

/* gpt-oss's template (its tokenizer.chat_template) without tools: the
 * system message, the user's system prompt as the developer's instructions,
 * the answers of earlier turns on the final channel (their analysis is not
 * kept: a message's content is its answer), then <|start|>assistant. */
static void render_harmony(const struct chat_message *m, size_t n, int gen, const char *effort,
			   time_t now, struct chat_prompt *p)
{
	char date[32];
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	lit(p, "<|start|>system<|message|>You are ChatGPT, a large language model trained by "
	       "OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: ");
	lit(p, date);
	lit(p, "\n\nReasoning: ");
	lit(p, effort ? effort : "medium");
	lit(p, "\n\n# Valid channels: analysis, commentary, final. Channel must be included for "
	       "every message.<|end|>");
	size_t sys = first_system(m, n);
	if (sys < n) {
		lit(p, "<|start|>developer<|message|># Instructions\n\n");
		txt(p, m[sys].content);
		lit(p, "\n\n<|end|>");
	}
	for (size_t i = 0; i < n; i++) {
		if (m[i].role == CHAT_ROLE_SYSTEM)
			continue;
		if (m[i].role == CHAT_ROLE_USER) {
			lit(p, "<|start|>user<|message|>");
			txt(p, m[i].content);
		} else {
			lit(p, "<|start|>assistant<|channel|>final<|message|>");
			txt(p, m[i].content);
		}
		lit(p, "<|end|>");
	}
	if (gen)
		lit(p, "<|start|>assistant");
}

int chat_template_render(enum chat_template_id id, const struct chat_message *m, size_t n, int gen,
			 const struct chat_template_tokens *tok, struct chat_prompt *p)
{
	struct chat_render_opts o = { .add_generation_prompt = gen,
				      .think = -1,
				      .now = chat_template_now() };
	return chat_template_render_opts(id, m, n, &o, tok, p);
}

int chat_template_render_opts(enum chat_template_id id, const struct chat_message *m, size_t n,
			      const struct chat_render_opts *o,
			      const struct chat_template_tokens *tok, struct chat_prompt *p)
{
	int gen = o->add_generation_prompt;
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

	case CHAT_TEMPLATE_HARMONY:
		render_harmony(m, n, gen, o->reasoning_effort, o->now, p);
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
	/* Jinja templates write BOS first; the tokenizer adds BOS itself when
	 * the vocabulary asks for one, so that one goes (as llama.cpp does) */
	size_t skip = 0, len;
	const char *bos = tokenizer_bos(t) >= 0 ? tokenizer_text(t, tokenizer_bos(t), &len) : NULL;
	if (bos && len && tokenizer_add_bos(t) && p->n_ranges && p->ranges[0][0] == 0 &&
	    p->ranges[0][1] >= len && p->text.len >= len && !memcmp(p->text.buf, bos, len))
		skip = len;
	if (!skip)
		return tokenizer_encode_ranges(t, p->text.buf, p->text.len, TOKENIZE_ADD_BOS,
					       (const size_t(*)[2])p->ranges, p->n_ranges, out,
					       max);
	size_t(*r)[2] = xcalloc(p->n_ranges, sizeof(*r));
	size_t nr = 0;
	for (size_t i = 0; i < p->n_ranges; i++) {
		size_t a = p->ranges[i][0] > skip ? p->ranges[i][0] - skip : 0;
		size_t b = p->ranges[i][1] - skip;
		if (b > a) {
			r[nr][0] = a;
			r[nr][1] = b;
			nr++;
		}
	}
	int rc = tokenizer_encode_ranges(t, p->text.buf + skip, p->text.len - skip,
					 TOKENIZE_ADD_BOS, (const size_t(*)[2])r, nr, out, max);
	free(r);
	return rc;
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
static const char *const stops_harmony[] = { "<|return|>", "<|call|>", NULL };

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
	case CHAT_TEMPLATE_HARMONY: return stops_harmony;
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

/* ---- the template a model uses ----------------------------------------------- */

time_t chat_template_now(void)
{
	const char *e = getenv("SOURCE_DATE_EPOCH");
	if (e && *e) {
		char *end;
		errno = 0;
		long long v = strtoll(e, &end, 10);
		if (!*end && !errno && v >= 0)
			return (time_t)v;
	}
	return time(NULL);
}

static void set_note(struct chat_template *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_note(struct chat_template *t, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	free(t->note);
	t->note = strbuf_detach(&sb, NULL);
}

/* Interpret Jinja text (what names it in messages: "the model's chat
 * template" or "'file.jinja'"); fall back to its family with a note. */
static int use_jinja(struct chat_template *t, const char *text, size_t len, const char *what)
{
	t->family = chat_template_detect(text, len);
	reasoning_markers(text, len, &t->think_open, &t->think_close);
	t->jinja = jinja_parse(text, len);
	if (t->jinja) {
		t->thinks = jinja_uses(t->jinja, "enable_thinking");
		snprintf(t->name, sizeof(t->name), "jinja");
		return 0;
	}
	char *why = error_take();
	if (t->family < 0) {
		error("%s cannot be interpreted (%s) and is no known format; choose one with "
		      "--chat-template (%s)",
		      what, why, chat_template_names());
		free(why);
		return -1;
	}
	snprintf(t->name, sizeof(t->name), "%s", chat_template_name(t->family));
	set_note(t, "%s cannot be interpreted (%s); using the '%s' format instead", what, why,
		 chat_template_name(t->family));
	free(why);
	return 0;
}

struct chat_template *chat_template_open(const struct gguf *g, const char *setting)
{
	struct chat_template *t = xcalloc(1, sizeof(*t));
	t->family = -1;
	reasoning_markers(NULL, 0, &t->think_open, &t->think_close);
	if (setting && *setting && strcmp(setting, "auto")) {
		int id = chat_template_from_name(setting);
		if (id >= 0) {
			t->family = id;
			if (id == CHAT_TEMPLATE_HARMONY)
				reasoning_markers("<|start|><|channel|>", 20, &t->think_open,
						  &t->think_close);
			snprintf(t->name, sizeof(t->name), "%s", chat_template_name(id));
			return t;
		}
		struct strbuf sb = STRBUF_INIT;
		if (read_setting_file(setting, &sb) < 0) {
			int e = errno;
			strbuf_release(&sb);
			free(t);
			if (e == ENOENT)
				error("unknown chat template '%s' (not a file, nor one of: %s)",
				      setting, chat_template_names());
			else {
				char reason[64];
				error("cannot read chat template '%s': %s", setting,
				      strbuf_read_failure(e, READ_MAX_TEMPLATE, reason,
							  sizeof(reason)));
			}
			return NULL;
		}
		/* a file holds a format name, or a Jinja template */
		struct strbuf name = STRBUF_INIT;
		strbuf_add(&name, sb.buf, sb.len);
		strbuf_trim(&name);
		id = chat_template_from_name(name.buf);
		strbuf_release(&name);
		if (id >= 0) {
			t->family = id;
			if (id == CHAT_TEMPLATE_HARMONY)
				reasoning_markers("<|start|><|channel|>", 20, &t->think_open,
						  &t->think_close);
			snprintf(t->name, sizeof(t->name), "%s", chat_template_name(id));
			strbuf_release(&sb);
			return t;
		}
		char what[300];
		snprintf(what, sizeof(what), "'%.250s'", setting);
		int rc = use_jinja(t, sb.buf, sb.len, what);
		strbuf_release(&sb);
		if (rc < 0) {
			chat_template_close(t);
			return NULL;
		}
		return t;
	}
	struct gguf_str s;
	if (!g || !gguf_find_kv(g, "tokenizer.chat_template")) {
		t->family = CHAT_TEMPLATE_NONE;
		t->defaulted = 1;
		snprintf(t->name, sizeof(t->name), "%s", chat_template_name(CHAT_TEMPLATE_NONE));
		return t;
	}
	if (gguf_get_str(g, "tokenizer.chat_template", &s) < 0 ||
	    use_jinja(t, s.data, s.len, "the model's chat template") < 0) {
		if (g)
			error_prefix("'%s': ", gguf_path(g));
		chat_template_close(t);
		return NULL;
	}
	return t;
}

void chat_template_close(struct chat_template *t)
{
	if (!t)
		return;
	jinja_free(t->jinja);
	free(t->note);
	free(t);
}

const char *const *chat_template_stop_strings(const struct chat_template *t)
{
	return t->family >= 0 ? chat_template_stops((enum chat_template_id)t->family) : stops_none;
}

/* The variables a chat template expects, as Hugging Face passes them. */
static int build_ctx(struct jinja_ctx *c, const struct chat_message *m, size_t n,
		     const struct chat_render_opts *o, const struct chat_template_tokens *tok,
		     int with_messages)
{
	if (with_messages) {
		struct jinja_value *list = jinja_list(c);
		if (!list)
			return -1;
		for (size_t i = 0; i < n; i++) {
			struct jinja_value *d = jinja_dict(c);
			const char *role = role_name(m[i].role);
			if (!d ||
			    jinja_dict_set(c, d, "role",
					   jinja_string(c, role, strlen(role), JINJA_INPUT)) < 0 ||
			    jinja_dict_set(c, d, "content",
					   jinja_string(c, m[i].content, strlen(m[i].content),
							JINJA_INPUT)) < 0 ||
			    jinja_list_append(c, list, d) < 0)
				return -1;
		}
		if (jinja_ctx_set(c, "messages", list) < 0)
			return -1;
	}
	if (jinja_ctx_set(c, "add_generation_prompt", jinja_bool(c, o->add_generation_prompt)) < 0)
		return -1;
	if (o->think >= 0 && jinja_ctx_set(c, "enable_thinking", jinja_bool(c, o->think)) < 0)
		return -1;
	if (o->reasoning_effort &&
	    jinja_ctx_set(c, "reasoning_effort",
			  jinja_string(c, o->reasoning_effort, strlen(o->reasoning_effort),
				       JINJA_INPUT)) < 0)
		return -1;
	/* HF passes tools and documents as None when there are none */
	if (!jinja_ctx_has(c, "tools") && jinja_ctx_set(c, "tools", jinja_none(c)) < 0)
		return -1;
	if (!jinja_ctx_has(c, "documents") && jinja_ctx_set(c, "documents", jinja_none(c)) < 0)
		return -1;
	if (tok && tok->bos && !jinja_ctx_has(c, "bos_token") &&
	    jinja_ctx_set(c, "bos_token",
			  jinja_string(c, tok->bos, strlen(tok->bos), JINJA_TEMPLATE)) < 0)
		return -1;
	if (tok && tok->eos && !jinja_ctx_has(c, "eos_token") &&
	    jinja_ctx_set(c, "eos_token",
			  jinja_string(c, tok->eos, strlen(tok->eos), JINJA_TEMPLATE)) < 0)
		return -1;
	return 0;
}

/* Append a Jinja output to p, with its ranges. */
static void take_output(struct chat_prompt *p, struct jinja_output *jo)
{
	size_t base = p->text.len;
	strbuf_add(&p->text, jo->text.buf, jo->text.len);
	for (size_t i = 0; i < jo->n_ranges; i++) {
		size_t a = base + jo->ranges[i][0], b = base + jo->ranges[i][1];
		if (p->n_ranges && p->ranges[p->n_ranges - 1][1] == a) {
			p->ranges[p->n_ranges - 1][1] = b;
			continue;
		}
		ALLOC_GROW(p->ranges, p->n_ranges + 1, p->alloc);
		p->ranges[p->n_ranges][0] = a;
		p->ranges[p->n_ranges][1] = b;
		p->n_ranges++;
	}
}

int chat_template_apply(const struct chat_template *t, const struct chat_message *m, size_t n,
			const struct chat_render_opts *o, const struct chat_template_tokens *tok,
			struct chat_prompt *p, char **fell_back)
{
	if (fell_back)
		*fell_back = NULL;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)m[i].role > CHAT_ROLE_ASSISTANT)
			return error("message %zu has an unknown role %d", i, (int)m[i].role);
		if (!m[i].content)
			return error("message %zu has no content", i);
	}
	if (!t->jinja)
		return chat_template_render_opts((enum chat_template_id)t->family, m, n, o, tok, p);
	struct jinja_ctx *own = NULL, *c = o->ctx;
	if (!c && !(c = own = jinja_ctx_new()))
		return -1;
	int rc = build_ctx(c, m, n, o, tok, own != NULL);
	struct jinja_output jo = JINJA_OUTPUT_INIT;
	if (rc == 0)
		rc = jinja_render(t->jinja, c, o->now, NULL, &jo);
	jinja_ctx_free(own);
	if (rc == 0) {
		take_output(p, &jo);
		jinja_output_release(&jo);
		return 0;
	}
	jinja_output_release(&jo);
	if (t->family < 0)
		return error_prefix("the chat template failed: "), -1;
	struct strbuf why = STRBUF_INIT;
	strbuf_addf(&why, "the chat template failed (%s); using the '%s' format instead",
		    error_message(), chat_template_name(t->family));
	error_clear();
	if (chat_template_render_opts((enum chat_template_id)t->family, m, n, o, tok, p) < 0) {
		strbuf_release(&why);
		return -1;
	}
	if (fell_back)
		*fell_back = strbuf_detach(&why, NULL);
	strbuf_release(&why);
	return 0;
}
