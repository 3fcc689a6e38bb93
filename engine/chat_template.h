/* Chat templates: a conversation (system, user, assistant messages) rendered as a model's prompt text. */
#ifndef PALAVER_CHAT_TEMPLATE_H
#define PALAVER_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "jinja.h"
#include "strbuf.h"

#include <time.h>

struct tokenizer;

/*
 * Each template is written in C after the family's own Jinja template (the
 * tokenizer_config.json chat_template of its reference models), not
 * interpreted from Jinja.  The rendered text never begins with the BOS
 * token: tokenize it with TOKENIZE_ADD_BOS and the vocabulary adds BOS when
 * it wants one.  BOS/EOS texts inside the conversation (llama2's
 * "</s><s>[INST]") are written as the vocabulary's token texts.
 *
 * The rendering also records which byte ranges the template itself wrote:
 * control tokens there (<|im_end|>) become their ids, while the same text
 * inside a message stays plain text.  Tokenize with
 * tokenizer_encode_ranges(prompt.text, prompt.ranges), or use
 * chat_prompt_tokenize().
 */
enum chat_template_id {
	CHAT_TEMPLATE_NONE,   /* raw completion: the texts concatenated as they are */
	CHAT_TEMPLATE_CHATML, /* <|im_start|>role\n...<|im_end|>\n (Qwen, SmolLM, Hermes, ...) */
	CHAT_TEMPLATE_LLAMA2, /* [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s><s>[INST] */
	CHAT_TEMPLATE_LLAMA3, /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
	CHAT_TEMPLATE_MISTRAL_V1, /* " [INST] ... [/INST] ...</s>", system in the first user turn */
	CHAT_TEMPLATE_MISTRAL_V3, /* "[INST] ...[/INST] ...</s>", system in the last user turn */
	CHAT_TEMPLATE_MISTRAL_V3_TEKKEN, /* "[INST]...[/INST]...</s>" (Nemo), system in the last user turn */
	CHAT_TEMPLATE_MISTRAL_V7, /* [SYSTEM_PROMPT] ...[/SYSTEM_PROMPT][INST] ...[/INST] ...</s> */
	CHAT_TEMPLATE_PHI3,       /* <|role|>\n...<|end|>\n */
	CHAT_TEMPLATE_PHI4,       /* <|im_start|>role<|im_sep|>...<|im_end|> */
	CHAT_TEMPLATE_GEMMA, /* <start_of_turn>user\n...<end_of_turn>\n; system into the first user turn */
	CHAT_TEMPLATE_ZEPHYR, /* <|role|>\n...</s>\n */
	CHAT_TEMPLATE_DEEPSEEK, /* deepseek-coder instruct: ### Instruction:\n...\n### Response:\n...\n<|EOT|>\n */
	CHAT_TEMPLATE_DEEPSEEK2, /* deepseek-llm chat / V2: User: ...\n\nAssistant: ...<｜end▁of▁sentence｜> */
	CHAT_TEMPLATE_DEEPSEEK3, /* DeepSeek V3 / R1: <｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜> */
	CHAT_TEMPLATE_VICUNA, /* system\n\nUSER: ...\nASSISTANT: ...</s>\n */
	/* gpt-oss: <|start|>role<|message|>...<|end|>, the system message (date,
	 * reasoning effort, channels) and the user's system prompt as the
	 * developer's instructions; the assistant's answers on the final channel */
	CHAT_TEMPLATE_HARMONY,
	CHAT_TEMPLATE_COUNT
};

enum chat_role {
	CHAT_ROLE_SYSTEM,
	CHAT_ROLE_USER,
	CHAT_ROLE_ASSISTANT,
};

struct chat_message {
	enum chat_role role;
	const char *content; /* NUL-terminated UTF-8 */
};

/* A rendered prompt. */
struct chat_prompt {
	struct strbuf text;  /* the prompt (without the leading BOS) */
	size_t (*ranges)[2]; /* [n_ranges] [start, end) byte ranges the template wrote */
	size_t n_ranges, alloc;
};
#define CHAT_PROMPT_INIT                                                                           \
	{                                                                                          \
		STRBUF_INIT, NULL, 0, 0                                                            \
	}
void chat_prompt_release(struct chat_prompt *p);

/* Texts of the vocabulary's BOS and EOS tokens ("<s>", "</s>"); NULL
 * members mean those defaults. */
struct chat_template_tokens {
	const char *bos;
	const char *eos;
};

/* The BOS and EOS texts of a vocabulary (NULL members where it has none). */
void chat_template_tokens_init(struct chat_template_tokens *ct, const struct tokenizer *t);

const char *chat_template_name(enum chat_template_id id);
/* The id for a name ("chatml", "llama3", "mistral-v7", "none", ...; "mistral"
 * means mistral-v3, "llama-2" llama2, "phi-3" phi3), or -1. */
int chat_template_from_name(const char *name);
/* All names, for messages and --help: "none, chatml, llama2, ..." */
const char *chat_template_names(void);

/* Recognise a Jinja chat template (tokenizer.chat_template) by its marker
 * strings; -1 when it is none of the known families. */
int chat_template_detect(const char *jinja, size_t len);

/*
 * Render messages[0..n) and, with add_generation_prompt, the opening of the
 * assistant's turn, appending to p.  Roles a family lacks are folded the
 * way its own template does (gemma and mistral put the system prompt into a
 * user turn).  0, or -1 after error() (a message with an unknown role).
 */
int chat_template_render(enum chat_template_id id, const struct chat_message *msgs, size_t n,
			 int add_generation_prompt, const struct chat_template_tokens *tok,
			 struct chat_prompt *p);

/* Render and tokenize (BOS added when the vocabulary wants one): ids as
 * tokenizer_encode returns them. */
int chat_prompt_tokenize(const struct chat_prompt *p, const struct tokenizer *t, int32_t *out,
			 int max);

/* Strings that end the assistant's turn in this template's format (stop
 * generating when the reply contains one): a NULL-terminated list, empty
 * for none.  Text only; see chat_template_stop_ids for the tokens. */
const char *const *chat_template_stops(enum chat_template_id id);

/* The token ids that end a turn: the vocabulary's end-of-generation tokens
 * and every stop string that is a single token.  Returns the count (at most
 * max written). */
int chat_template_stop_ids(enum chat_template_id id, const struct tokenizer *t, int32_t *ids,
			   int max);

/* ---- the template a model uses: its own Jinja, or a family ------------------ */

/*
 * A chat template as chosen for a model.  A Jinja template (the model's
 * tokenizer.chat_template, or a file) is interpreted (jinja.h); the family
 * it resembles, if any, is kept as the fallback for when the interpreter
 * refuses it or a render fails, and gives the stop strings.
 */
struct chat_template {
	int family; /* enum chat_template_id; -1: the Jinja text is no known family */
	struct jinja_template *jinja; /* NULL: the family renders */
	int defaulted;                /* the model has no template: raw completion */
	int thinks;                   /* the Jinja template reads enable_thinking */
	char name[32];                /* "jinja" or the family's name */
	const char *think_open;       /* the markers of a thinking block in replies */
	const char *think_close;
	char *note; /* to tell the user once (malloc'd), or NULL */
};

/*
 * Choose the template for a model (g may be NULL).  setting is "auto" (or
 * NULL): the model's own template, interpreted; a family name; or a file
 * holding a family name or a Jinja template.  A Jinja template the
 * interpreter refuses falls back to the family its markers show, with a
 * note saying so; one that is no family either is an error, as are an
 * unknown name and an unreadable file.  NULL after error().
 */
struct chat_template *chat_template_open(const struct gguf *g, const char *setting);
void chat_template_close(struct chat_template *t);

struct chat_render_opts {
	int add_generation_prompt;
	int think;             /* -1: as the template decides; 0, 1: enable_thinking */
	struct jinja_ctx *ctx; /* optional: the variables (messages included) to render the
				* Jinja template with instead of m[]; missing standard ones
				* (bos_token, eos_token, tools, ...) are added */
	time_t now;            /* what strftime_now() reports */
	/* NULL, or "low", "medium", "high": harmony's reasoning effort (the
	 * Jinja variable reasoning_effort; the format's default is medium) */
	const char *reasoning_effort;
};

/* chat_template_render with the options (generation prompt, reasoning
 * effort, the date) that some formats read. */
int chat_template_render_opts(enum chat_template_id id, const struct chat_message *m, size_t n,
			      const struct chat_render_opts *o,
			      const struct chat_template_tokens *tok, struct chat_prompt *p);

/*
 * Render messages m[0..n) with t, appending to p.  A Jinja render that
 * fails (raise_exception, an error in the template) falls back to the
 * family when there is one and *fell_back gets the reason (malloc'd; say it
 * once), else it is an error.  0, or -1 after error().
 */
int chat_template_apply(const struct chat_template *t, const struct chat_message *m, size_t n,
			const struct chat_render_opts *o, const struct chat_template_tokens *tok,
			struct chat_prompt *p, char **fell_back);

/* The stop strings for t: its family's (none for a Jinja template that is no family). */
const char *const *chat_template_stop_strings(const struct chat_template *t);

/* The time strftime_now() reports: $SOURCE_DATE_EPOCH when set (reproducible
 * prompts and tests), else now. */
time_t chat_template_now(void);

#endif
