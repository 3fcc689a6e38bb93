/* config.yaml loading with libyaml, PALAVER_* variables, validation and origins. */
#include "config.h"
#include "engine.h"
#include "json.h"
#include "log.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"
#include "xalloc.h"
#include "theme.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/*
 * DESIGN
 *
 * One table, `keys`, describes every configuration key: its dotted name
 * ("sampling.top_p"), type, field offset in struct config, allowed range and
 * environment variable.  The YAML walker, the environment layer, the flags
 * (config_set) and `palaver config` all go through it, so a key added to the
 * table is loaded, validated, overridable and printed everywhere at once.
 *
 * Atomicity: each layer is applied to a deep copy of the configuration and
 * the copy replaces the original only when the whole layer is valid;
 * config_load() does the same around all its layers.  A bad file therefore
 * never leaves half of itself applied.
 *
 * libyaml's document API builds the node tree with start marks (0-based
 * line and column), which gives every message its FILE:LINE:COL.  libyaml
 * accepts duplicate keys, so the walker checks for them itself.
 */

enum key_type {
	K_STRING,  /* any scalar; non-empty */
	K_NSTRING, /* any scalar; null, ~ or empty = NULL */
	K_INT,
	K_DOUBLE,
	K_BOOL,
	K_ENUM,
	K_SIZE, /* bytes: 8GiB, 512M, 1000000; 0 = unlimited */
	K_SEED, /* unsigned 64-bit integer or "random" */
	K_LIST, /* list of strings (stop) */
};

struct key {
	const char *name;  /* dotted: "sampling.temperature" */
	const char *alias; /* another leaf name accepted ("ctx"), or NULL */
	enum key_type type;
	size_t off;               /* offset of the field in struct config */
	double min, max;          /* K_INT, K_DOUBLE: inclusive range */
	int min_open;             /* K_DOUBLE: min itself is not allowed */
	const char *const *names; /* K_ENUM: NULL-terminated, index = value */
	const char *env;          /* environment variable, NULL = none */
};

static const char *const backend_names[] = { "auto", "cpu", "cuda", NULL };
static const char *const overflow_names[] = { "stop", "drop-oldest", "shift", NULL };
static const char *const memory_mode_names[] = { "strict", "warn", NULL };
const char *const config_isa_names[] = { "auto",   "scalar",      "avx2", "avx512-256",
					 "avx512", "avx512-vnni", NULL };
static const char *const level_names[] = { "trace", "debug", "info", "warn", "error", "off", NULL };
static const char *const think_names[] = { "auto", "on", "off", NULL };
static const char *const effort_names[] = { "auto", "low", "medium", "high", NULL };
static const char *const reasoning_names[] = { "hide", "show", "stderr", NULL };
static const char *const thinking_view_names[] = { "collapse", "show", "hide", NULL };

const char *config_backend_name(enum config_backend b)
{
	return (unsigned)b < 3 ? backend_names[b] : "auto";
}

#define F(field) offsetof(struct config, field)
#define BIG 16777216.0 /* 2^24: a bound for token counts */

static const struct key keys[] = {
	{ "model", NULL, K_NSTRING, F(model), 0, 0, 0, NULL, "PALAVER_MODEL" },
	{ "context", "ctx", K_INT, F(ctx), 0, BIG, 0, NULL, "PALAVER_CONTEXT" },
	{ "threads", NULL, K_INT, F(threads), 0, 1024, 0, NULL, "PALAVER_THREADS" },
	{ "backend", NULL, K_ENUM, F(backend), 0, 0, 0, backend_names, "PALAVER_BACKEND" },
	{ "batch_size", NULL, K_INT, F(batch_size), 1, 65536, 0, NULL, "PALAVER_BATCH_SIZE" },
	{ "sampling.temperature", NULL, K_DOUBLE, F(sampling.temperature), 0, 10, 0, NULL,
	  "PALAVER_TEMPERATURE" },
	{ "sampling.top_k", NULL, K_INT, F(sampling.top_k), 0, BIG, 0, NULL, "PALAVER_TOP_K" },
	{ "sampling.top_p", NULL, K_DOUBLE, F(sampling.top_p), 0, 1, 0, NULL, "PALAVER_TOP_P" },
	{ "sampling.min_p", NULL, K_DOUBLE, F(sampling.min_p), 0, 1, 0, NULL, "PALAVER_MIN_P" },
	{ "sampling.typical_p", NULL, K_DOUBLE, F(sampling.typical_p), 0, 1, 1, NULL,
	  "PALAVER_TYPICAL_P" },
	{ "sampling.repeat_penalty", NULL, K_DOUBLE, F(sampling.repeat_penalty), 0, 10, 1, NULL,
	  "PALAVER_REPEAT_PENALTY" },
	{ "sampling.repeat_last_n", NULL, K_INT, F(sampling.repeat_last_n), -1, BIG, 0, NULL,
	  "PALAVER_REPEAT_LAST_N" },
	{ "sampling.presence_penalty", NULL, K_DOUBLE, F(sampling.presence_penalty), -2, 2, 0, NULL,
	  "PALAVER_PRESENCE_PENALTY" },
	{ "sampling.frequency_penalty", NULL, K_DOUBLE, F(sampling.frequency_penalty), -2, 2, 0,
	  NULL, "PALAVER_FREQUENCY_PENALTY" },
	{ "sampling.seed", NULL, K_SEED, F(sampling.seed), 0, 0, 0, NULL, "PALAVER_SEED" },
	{ "sampling.max_tokens", NULL, K_INT, F(sampling.max_tokens), -1, BIG, 0, NULL,
	  "PALAVER_MAX_TOKENS" },
	{ "system_prompt", NULL, K_NSTRING, F(system_prompt), 0, 0, 0, NULL,
	  "PALAVER_SYSTEM_PROMPT" },
	{ "chat_template", NULL, K_STRING, F(chat_template), 0, 0, 0, NULL,
	  "PALAVER_CHAT_TEMPLATE" },
	{ "think", NULL, K_ENUM, F(think), 0, 0, 0, think_names, "PALAVER_THINK" },
	{ "reasoning_effort", NULL, K_ENUM, F(reasoning_effort), 0, 0, 0, effort_names,
	  "PALAVER_REASONING_EFFORT" },
	{ "reasoning", NULL, K_ENUM, F(reasoning), 0, 0, 0, reasoning_names, "PALAVER_REASONING" },
	{ "context_overflow", NULL, K_ENUM, F(context_overflow), 0, 0, 0, overflow_names,
	  "PALAVER_CONTEXT_OVERFLOW" },
	{ "keep", NULL, K_INT, F(keep), 0, BIG, 0, NULL, "PALAVER_KEEP" },
	{ "stop", NULL, K_LIST, F(stop), 0, 0, 0, NULL, NULL },
	{ "engine.max_buffered_tokens", NULL, K_INT, F(max_buffered_tokens), 1, 1048576, 0, NULL,
	  "PALAVER_MAX_BUFFERED_TOKENS" },
	{ "engine.max_time", NULL, K_DOUBLE, F(max_time), 0, 1e7, 0, NULL, "PALAVER_MAX_TIME" },
	{ "memory.limit", NULL, K_SIZE, F(memory_limit), 0, 0, 0, NULL, "PALAVER_MEMORY_LIMIT" },
	{ "memory.mode", NULL, K_ENUM, F(memory_mode), 0, 0, 0, memory_mode_names,
	  "PALAVER_MEMORY_MODE" },
	{ "memory.lock", NULL, K_BOOL, F(memory_lock), 0, 0, 0, NULL, "PALAVER_MEMORY_LOCK" },
	{ "repack", NULL, K_BOOL, F(repack), 0, 0, 0, NULL, "PALAVER_REPACK" },
	{ "isa", NULL, K_ENUM, F(isa), 0, 0, 0, config_isa_names, "PALAVER_ISA" },
	{ "history.path", NULL, K_NSTRING, F(history_path), 0, 0, 0, NULL, "PALAVER_HISTORY_PATH" },
	{ "history.enabled", NULL, K_BOOL, F(history_enabled), 0, 0, 0, NULL,
	  "PALAVER_HISTORY_ENABLED" },
	{ "kv_cache.max_disk", NULL, K_SIZE, F(kv_max_disk), 0, 0, 0, NULL,
	  "PALAVER_KV_CACHE_MAX_DISK" },
	{ "ui.theme", NULL, K_STRING, F(ui_theme), 0, 0, 0, theme_names, "PALAVER_UI_THEME" },
	{ "ui.status_pane", NULL, K_BOOL, F(ui_status_pane), 0, 0, 0, NULL,
	  "PALAVER_UI_STATUS_PANE" },
	{ "ui.word_wrap", NULL, K_BOOL, F(ui_word_wrap), 0, 0, 0, NULL, "PALAVER_UI_WORD_WRAP" },
	{ "ui.thinking", NULL, K_ENUM, F(ui_thinking), 0, 0, 0, thinking_view_names,
	  "PALAVER_UI_THINKING" },
	{ "log.file", NULL, K_NSTRING, F(log_file), 0, 0, 0, NULL, "PALAVER_LOG_FILE" },
	{ "log.level", NULL, K_ENUM, F(log_level), 0, 0, 0, level_names, "PALAVER_LOG_LEVEL" },
	{ "remote.url", NULL, K_NSTRING, F(remote_url), 0, 0, 0, NULL, "PALAVER_REMOTE_URL" },
	{ "remote.model", NULL, K_NSTRING, F(remote_model), 0, 0, 0, NULL, "PALAVER_REMOTE_MODEL" },
	{ "remote.api_key_env", NULL, K_NSTRING, F(remote_api_key_env), 0, 0, 0, NULL,
	  "PALAVER_REMOTE_API_KEY_ENV" },
	{ "remote.timeout", NULL, K_DOUBLE, F(remote_timeout), 0, 1e6, 0, NULL,
	  "PALAVER_REMOTE_TIMEOUT" },
	{ "remote.retries", NULL, K_INT, F(remote_retries), 0, 10, 0, NULL,
	  "PALAVER_REMOTE_RETRIES" },
};

#undef F

#define N_KEYS ((int)(sizeof(keys) / sizeof(keys[0])))
_Static_assert(sizeof(keys) / sizeof(keys[0]) <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");
_Static_assert(sizeof(enum config_backend) == sizeof(int), "enums are stored as int");

/* The field of key k: offsetof arithmetic, through void * to the field's own type. */
#define FIELD(cfg, k, type) ((type *)(void *)((char *)(cfg) + keys[k].off))
#define CFIELD(cfg, k, type) ((const type *)(const void *)((const char *)(cfg) + keys[k].off))

int config_key_count(void)
{
	return N_KEYS;
}

const char *config_key_name(int k)
{
	return k >= 0 && k < N_KEYS ? keys[k].name : NULL;
}

const char *config_env_name(int k)
{
	return k >= 0 && k < N_KEYS ? keys[k].env : NULL;
}

/* The part of a dotted name after the section ("top_p"), or the name. */
static const char *key_leaf(int k)
{
	const char *dot = strchr(keys[k].name, '.');
	return dot ? dot + 1 : keys[k].name;
}

/* Does key k live in section (length n; n == 0: the top level)? */
static int key_in_section(int k, const char *section, size_t n)
{
	const char *dot = strchr(keys[k].name, '.');
	if (!n)
		return !dot;
	return dot && (size_t)(dot - keys[k].name) == n && !strncmp(keys[k].name, section, n);
}

int config_key_index(const char *key)
{
	for (int k = 0; k < N_KEYS; k++) {
		if (!strcmp(keys[k].name, key))
			return k;
		if (keys[k].alias && !strchr(keys[k].name, '.') && !strcmp(keys[k].alias, key))
			return k;
	}
	return -1;
}

/* ---- life cycle ---------------------------------------------------------- */

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->model = NULL;
	cfg->ctx = 0;
	cfg->threads = 0;
	cfg->backend = BACKEND_AUTO;
	cfg->batch_size = 512;
	cfg->sampling.temperature = 0.8;
	cfg->sampling.top_k = 40;
	cfg->sampling.top_p = 0.95;
	cfg->sampling.min_p = 0.05;
	cfg->sampling.typical_p = 1.0;
	cfg->sampling.repeat_penalty = 1.0;
	cfg->sampling.repeat_last_n = 64;
	cfg->sampling.presence_penalty = 0.0;
	cfg->sampling.frequency_penalty = 0.0;
	cfg->sampling.seed = 0;
	cfg->sampling.seed_random = 1;
	cfg->sampling.max_tokens = -1;
	cfg->system_prompt = NULL;
	cfg->chat_template = xstrdup("auto");
	cfg->think = THINK_AUTO;
	cfg->reasoning_effort = EFFORT_AUTO;
	cfg->reasoning = BATCH_REASONING_HIDE;
	cfg->context_overflow = OVERFLOW_DROP_OLDEST;
	cfg->keep = 0;
	cfg->n_stop = 0;
	cfg->max_buffered_tokens = 256;
	cfg->max_time = 0;
	cfg->memory_limit = 0;
	cfg->memory_mode = MEMORY_STRICT;
	cfg->memory_lock = 0;
	cfg->history_path = NULL;
	cfg->history_enabled = 1;
	cfg->kv_max_disk = 2ull << 30;
	cfg->repack = 1;
	cfg->ui_theme = xstrdup("default");
	cfg->ui_status_pane = 1;
	cfg->ui_word_wrap = 1;
	cfg->ui_thinking = THINKING_COLLAPSE;
	cfg->log_file = NULL;
	cfg->log_level = LOG_INFO;
	cfg->remote_url = NULL;
	cfg->remote_model = NULL;
	cfg->remote_api_key_env = NULL;
	cfg->remote_timeout = 300;
	cfg->remote_retries = 2;
}

static void free_strings(struct config *cfg)
{
	for (int k = 0; k < N_KEYS; k++)
		if (keys[k].type == K_STRING || keys[k].type == K_NSTRING)
			free(*FIELD(cfg, k, char *));
	for (int i = 0; i < cfg->n_stop; i++)
		free(cfg->stop[i]);
	for (int k = 0; k < CONFIG_MAX_KEYS; k++)
		free(cfg->origin[k]);
	free(cfg->prompt);
	free(cfg->session);
	free(cfg->config_files);
}

void config_free(struct config *cfg)
{
	free_strings(cfg);
	memset(cfg, 0, sizeof(*cfg));
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	for (int k = 0; k < N_KEYS; k++)
		if (keys[k].type == K_STRING || keys[k].type == K_NSTRING)
			*FIELD(dst, k, char *) = dup_or_null(*CFIELD(src, k, char *));
	for (int i = 0; i < src->n_stop; i++)
		dst->stop[i] = xstrdup(src->stop[i]);
	for (int k = 0; k < CONFIG_MAX_KEYS; k++)
		dst->origin[k] = dup_or_null(src->origin[k]);
	dst->prompt = dup_or_null(src->prompt);
	dst->session = dup_or_null(src->session);
	dst->config_files = dup_or_null(src->config_files);
}

/* Replace *dst by the scratch copy: the commit step of every layer. */
static void commit(struct config *dst, struct config *scratch)
{
	free_strings(dst);
	*dst = *scratch;
}

static void set_origin(struct config *cfg, int k, const char *origin)
{
	free(cfg->origin[k]);
	cfg->origin[k] = dup_or_null(origin);
}

/* ---- did you mean -------------------------------------------------------- */

int config_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int *d, r;
	size_t w = lb + 1;

	if (la > 256 || lb > 256)
		return 1000;
	d = xcalloc((la + 1) * w, sizeof(*d));
	for (size_t i = 0; i <= la; i++)
		d[i * w] = (int)i;
	for (size_t j = 0; j <= lb; j++)
		d[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int v = d[(i - 1) * w + j] + 1;
			if (d[i * w + j - 1] + 1 < v)
				v = d[i * w + j - 1] + 1;
			if (d[(i - 1) * w + j - 1] + cost < v)
				v = d[(i - 1) * w + j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[(i - 2) * w + j - 2] + 1 < v)
				v = d[(i - 2) * w + j - 2] + 1;
			d[i * w + j] = v;
		}
	}
	r = d[la * w + lb];
	free(d);
	return r;
}

/* Close enough to suggest: a typo, not a different word. */
static int is_close(const char *typed, const char *cand, int *best)
{
	int d = config_edit_distance(typed, cand);
	size_t n = strlen(typed);
	/* "gpu" is one letter from "cpu" but means something else: short words
	 * get no suggestion */
	int limit = n <= 3 ? 0 : n <= 4 ? 1 : n <= 8 ? 2 : 3;
	if (d > limit || d >= *best)
		return 0;
	*best = d;
	return 1;
}

/* The closest name in a NULL-terminated list, or NULL. */
static const char *suggest_from(const char *typed, const char *const *names)
{
	const char *found = NULL;
	int best = 1000;
	for (int i = 0; names[i]; i++)
		if (is_close(typed, names[i], &best))
			found = names[i];
	return found;
}

static const char *const section_names[] = { "sampling", "engine", "memory",   "history", "ui",
					     "log",      "remote", "kv_cache", NULL };

static int is_section(const char *s, size_t n)
{
	for (int i = 0; section_names[i]; i++)
		if (strlen(section_names[i]) == n && !strncmp(section_names[i], s, n))
			return 1;
	return 0;
}

/*
 * Append "; did you mean 'X'?" for an unknown key typed in section (""
 * = top level): first a near miss among the keys (and sections) of that
 * level, then the same leaf name in another section (a misplaced key).
 */
static void add_suggestion(struct strbuf *msg, const char *typed, const char *section)
{
	size_t n = strlen(section);
	const char *found = NULL;
	int best = 1000;

	for (int k = 0; k < N_KEYS; k++) {
		if (!key_in_section(k, section, n))
			continue;
		if (is_close(typed, key_leaf(k), &best))
			found = key_leaf(k);
		if (keys[k].alias && is_close(typed, keys[k].alias, &best))
			found = keys[k].alias;
	}
	if (!n)
		for (int i = 0; section_names[i]; i++)
			if (is_close(typed, section_names[i], &best))
				found = section_names[i];
	if (found) {
		strbuf_addf(msg, "; did you mean '%s'?", found);
		return;
	}
	for (int k = 0; k < N_KEYS; k++) {
		if (key_in_section(k, section, n) || strcmp(key_leaf(k), typed))
			continue;
		strbuf_addf(msg, "; did you mean '%s'?", keys[k].name);
		return;
	}
}

/* ---- values -------------------------------------------------------------- */

static int is_null_word(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcasecmp(s, "null");
}

/* File keys may start with "~/" (config files get no shell to expand it). */
static char *expand_home(int k, const char *text)
{
	static const char *const path_keys[] = { "model", "history.path", "log.file", NULL };
	const char *home = getenv("HOME");
	struct strbuf sb = STRBUF_INIT;

	if (strncmp(text, "~/", 2) || !home || !*home)
		return xstrdup(text);
	for (int i = 0; path_keys[i]; i++) {
		if (!strcmp(keys[k].name, path_keys[i])) {
			strbuf_addf(&sb, "%s%s", home, text + 1);
			return strbuf_detach(&sb, NULL);
		}
	}
	return xstrdup(text);
}

/* "'KEY' must be one of a, b, c, not 'x'; did you mean 'b'?" and -1. */
static int not_one_of(const struct key *key, const char *text, struct strbuf *msg)
{
	const char *near;
	strbuf_addf(msg, "'%s' must be one of ", key->name);
	for (int i = 0; key->names[i]; i++)
		strbuf_addf(msg, "%s%s", i ? ", " : "", key->names[i]);
	strbuf_addf(msg, ", not '%s'", text);
	near = suggest_from(text, key->names);
	if (near)
		strbuf_addf(msg, "; did you mean '%s'?", near);
	return -1;
}

/* 0 when v is within key k's range (NaN never is); else -1 with the message
 * in msg, text being v as it was written. */
static int check_range(int k, double v, const char *text, struct strbuf *msg)
{
	const struct key *key = &keys[k];
	if (v >= key->min && v <= key->max && !(key->min_open && v == key->min))
		return 0;
	if (key->min_open)
		strbuf_addf(msg, "'%s' must be above %g and at most %g, not %s", key->name,
			    key->min, key->max, text);
	else
		strbuf_addf(msg, "'%s' must be between %g and %g, not %s", key->name, key->min,
			    key->max, text);
	return -1;
}

/*
 * Set key k from scalar text.  plain: the YAML scalar was unquoted (or the
 * text comes from a flag or the environment), so it may be a number, bool
 * or null; a quoted scalar is always a string.  On error, returns -1 with
 * the message (no location) in msg.
 */
static int set_scalar(struct config *cfg, int k, const char *text, int plain, struct strbuf *msg)
{
	const struct key *key = &keys[k];
	long l;
	double d;
	uint64_t u;

	if (!plain && (key->type == K_INT || key->type == K_DOUBLE || key->type == K_BOOL ||
		       key->type == K_SEED)) {
		strbuf_addf(msg, "'%s' must be %s, not a quoted string (\"%s\")", key->name,
			    key->type == K_INT    ? "an integer"
			    : key->type == K_BOOL ? "true or false"
			    : key->type == K_SEED ? "an integer or random"
						  : "a number",
			    text);
		return -1;
	}
	switch (key->type) {
	case K_STRING:
	case K_NSTRING: {
		char **field = FIELD(cfg, k, char *);
		/* model: null means "the built-in model", "" means none at all
		 * (config_finish() turns it into NULL after choosing) */
		int keep_empty = !*text && !strcmp(key->name, "model");
		if (!keep_empty && ((plain && is_null_word(text)) || !*text)) {
			if (key->type == K_STRING) {
				strbuf_addf(msg, "'%s' must be a non-empty string", key->name);
				return -1;
			}
			free(*field);
			*field = NULL;
			return 0;
		}
		/* the server's address: refused here, where the message can say
		 * which file and line, not when the chat starts */
		if (!strcmp(key->name, "remote.url") && strncasecmp(text, "http://", 7) &&
		    strncasecmp(text, "https://", 8)) {
			strbuf_addf(msg, "'%s' must be an http:// or https:// URL, not '%s'",
				    key->name, text);
			return -1;
		}
		/* a string key with a fixed set of values (ui.theme) */
		if (key->names) {
			int i = 0;
			while (key->names[i] && strcmp(text, key->names[i]))
				i++;
			if (!key->names[i])
				return not_one_of(key, text, msg);
		}
		free(*field);
		*field = expand_home(k, text);
		return 0;
	}
	case K_INT:
		if (!plain || parse_long(text, &l) < 0) {
			strbuf_addf(msg, "'%s' must be an integer, not '%s'", key->name, text);
			return -1;
		}
		if (check_range(k, (double)l, text, msg) < 0)
			return -1;
		*FIELD(cfg, k, int) = (int)l;
		return 0;
	case K_DOUBLE:
		if (!plain || parse_double(text, &d) < 0) {
			strbuf_addf(msg, "'%s' must be a number, not '%s'", key->name, text);
			return -1;
		}
		if (check_range(k, d, text, msg) < 0)
			return -1;
		*FIELD(cfg, k, double) = d;
		return 0;
	case K_BOOL:
		if (plain && (!strcasecmp(text, "true") || !strcasecmp(text, "yes") ||
			      !strcasecmp(text, "on") || !strcmp(text, "1"))) {
			*FIELD(cfg, k, int) = 1;
			return 0;
		}
		if (plain && (!strcasecmp(text, "false") || !strcasecmp(text, "no") ||
			      !strcasecmp(text, "off") || !strcmp(text, "0"))) {
			*FIELD(cfg, k, int) = 0;
			return 0;
		}
		strbuf_addf(msg, "'%s' must be true or false, not '%s'", key->name, text);
		return -1;
	case K_ENUM: {
		for (int i = 0; key->names[i]; i++) {
			if (!strcmp(text, key->names[i])) {
				*FIELD(cfg, k, int) = i;
				return 0;
			}
		}
		if (key->names == level_names && !strcmp(text, "warning")) {
			*FIELD(cfg, k, int) = LOG_WARN;
			return 0;
		}
		return not_one_of(key, text, msg);
	}
	case K_SIZE:
		if (!strcmp(text, "unlimited") || (plain && is_null_word(text))) {
			*FIELD(cfg, k, uint64_t) = 0;
			return 0;
		}
		if (parse_size(text, &u) < 0) {
			strbuf_addf(msg, "'%s' must be a size such as 8GiB, 512MiB or 0, not '%s'",
				    key->name, text);
			return -1;
		}
		*FIELD(cfg, k, uint64_t) = u;
		return 0;
	case K_SEED: {
		char *end;
		unsigned long long v;
		if (plain && (!strcmp(text, "random") || !strcmp(text, "-1"))) {
			cfg->sampling.seed_random = 1;
			cfg->sampling.seed = 0;
			return 0;
		}
		errno = 0;
		v = (plain && *text >= '0' && *text <= '9') ? strtoull(text, &end, 10) : 0;
		if (!plain || !(*text >= '0' && *text <= '9') || errno || *end) {
			strbuf_addf(msg,
				    "'%s' must be an integer from 0 to %llu or random, not '%s'",
				    key->name, (unsigned long long)UINT64_MAX, text);
			return -1;
		}
		cfg->sampling.seed = v;
		cfg->sampling.seed_random = 0;
		return 0;
	}
	case K_LIST:
		if (plain && is_null_word(text)) {
			for (int i = 0; i < cfg->n_stop; i++)
				free(cfg->stop[i]);
			cfg->n_stop = 0;
			return 0;
		}
		strbuf_addf(msg, "'%s' must be a list of strings, such as [\"</s>\", \"User:\"]",
			    key->name);
		return -1;
	}
	return -1;
}

int config_set(struct config *cfg, const char *key, const char *value, const char *origin)
{
	struct strbuf msg = STRBUF_INIT;
	struct config scratch;
	int k = config_key_index(key);

	if (k < 0)
		return error("unknown configuration key '%s'", key);
	if (keys[k].type == K_LIST)
		return error("'%s' can only be set in a config file", keys[k].name);
	config_copy(&scratch, cfg);
	if (set_scalar(&scratch, k, value, 1, &msg) < 0) {
		error("%s", msg.buf);
		strbuf_release(&msg);
		config_free(&scratch);
		return -1;
	}
	set_origin(&scratch, k, origin);
	commit(cfg, &scratch);
	return 0;
}

/* ---- YAML ---------------------------------------------------------------- */

struct walk {
	const char *path; /* the file name, for messages and origins */
	yaml_document_t *doc;
	struct config *cfg;   /* the scratch copy */
	struct strbuf origin; /* "FILE:LINE" under construction */
};

static int fail_at(struct walk *w, yaml_mark_t mark, const char *msg)
{
	return error("%s:%zu:%zu: %s", w->path, mark.line + 1, mark.column + 1, msg);
}

static const char *kind_name(const yaml_node_t *node)
{
	switch (node->type) {
	case YAML_MAPPING_NODE: return "a mapping";
	case YAML_SEQUENCE_NODE: return "a list";
	default: return "a scalar";
	}
}

static int scalar_plain(const yaml_node_t *node)
{
	return node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
	       node->data.scalar.style == YAML_ANY_SCALAR_STYLE;
}

/* Scalars may hold NUL bytes ("\0" in double quotes): refuse them. */
static const char *scalar_text(const yaml_node_t *node)
{
	const char *s = (const char *)node->data.scalar.value;
	if (strlen(s) != node->data.scalar.length)
		return NULL;
	return s;
}

static int walk_list(struct walk *w, int k, yaml_node_t *node)
{
	struct config *cfg = w->cfg;
	char *items[CONFIG_MAX_STOP] = { NULL };
	int n = 0;

	for (yaml_node_item_t *it = node->data.sequence.items.start;
	     it < node->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(w->doc, *it);
		struct strbuf msg = STRBUF_INIT;
		const char *text =
			item && item->type == YAML_SCALAR_NODE ? scalar_text(item) : NULL;
		int rc;

		if (!text || !*text || n == CONFIG_MAX_STOP) {
			if (!item || item->type != YAML_SCALAR_NODE)
				strbuf_addf(&msg, "'%s' items must be strings, not %s",
					    keys[k].name, item ? kind_name(item) : "nothing");
			else if (n == CONFIG_MAX_STOP)
				strbuf_addf(&msg, "'%s' holds at most %d strings", keys[k].name,
					    CONFIG_MAX_STOP);
			else
				strbuf_addf(&msg, "'%s' items must be non-empty strings",
					    keys[k].name);
			rc = fail_at(w, item ? item->start_mark : node->start_mark, msg.buf);
			strbuf_release(&msg);
			for (int i = 0; i < n; i++)
				free(items[i]);
			return rc;
		}
		items[n++] = xstrdup(text);
	}
	for (int i = 0; i < cfg->n_stop; i++)
		free(cfg->stop[i]);
	memcpy(cfg->stop, items, (size_t)n * sizeof(items[0]));
	cfg->n_stop = n;
	return 0;
}

static int walk_value(struct walk *w, int k, yaml_node_t *key_node, yaml_node_t *node)
{
	struct strbuf msg = STRBUF_INIT;
	const char *text;
	int rc = 0;

	if (keys[k].type == K_LIST && node->type == YAML_SEQUENCE_NODE) {
		rc = walk_list(w, k, node);
	} else if (node->type != YAML_SCALAR_NODE) {
		strbuf_addf(&msg, "'%s' must be %s, not %s", keys[k].name,
			    keys[k].type == K_LIST ? "a list of strings" : "a single value",
			    kind_name(node));
		rc = fail_at(w, node->start_mark, msg.buf);
	} else if (!(text = scalar_text(node))) {
		strbuf_addf(&msg, "'%s' must not contain NUL bytes", keys[k].name);
		rc = fail_at(w, node->start_mark, msg.buf);
	} else if (set_scalar(w->cfg, k, text, scalar_plain(node), &msg) < 0) {
		rc = fail_at(w, node->start_mark, msg.buf);
	}
	if (!rc) {
		strbuf_reset(&w->origin);
		strbuf_addf(&w->origin, "%s:%zu", w->path, key_node->start_mark.line + 1);
		set_origin(w->cfg, k, w->origin.buf);
	}
	strbuf_release(&msg);
	return rc;
}

/* Walk a mapping: section "" is the top level, else e.g. "sampling". */
static int walk_mapping(struct walk *w, yaml_node_t *map, const char *section)
{
	size_t n = strlen(section);

	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
		struct strbuf msg = STRBUF_INIT;
		const char *name;
		int k = -1, rc;

		if (!kn || !vn || kn->type != YAML_SCALAR_NODE || !(name = scalar_text(kn)))
			return fail_at(w, kn ? kn->start_mark : map->start_mark,
				       "keys must be plain names");

		/* duplicates: the same key (or its alias) earlier in this mapping */
		for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *qn = yaml_document_get_node(w->doc, q->key);
			const char *qname = (const char *)qn->data.scalar.value;
			int same = !strcmp(qname, name);
			if (!same && !n) {
				int a = config_key_index(qname), b = config_key_index(name);
				same = a >= 0 && a == b;
			}
			if (same) {
				strbuf_addf(&msg, "duplicate key '%s' (first given on line %zu)",
					    name, qn->start_mark.line + 1);
				rc = fail_at(w, kn->start_mark, msg.buf);
				strbuf_release(&msg);
				return rc;
			}
		}

		if (!n && is_section(name, strlen(name))) {
			if (vn->type == YAML_SCALAR_NODE && scalar_plain(vn) &&
			    is_null_word(scalar_text(vn) ? scalar_text(vn) : "x"))
				continue; /* "sampling:" with nothing under it */
			if (vn->type != YAML_MAPPING_NODE) {
				strbuf_addf(&msg, "'%s' must be a mapping of keys, not %s", name,
					    kind_name(vn));
				rc = fail_at(w, vn->start_mark, msg.buf);
				strbuf_release(&msg);
				return rc;
			}
			if (walk_mapping(w, vn, name) < 0)
				return -1;
			continue;
		}

		for (int j = 0; j < N_KEYS && k < 0; j++)
			if (key_in_section(j, section, n) &&
			    (!strcmp(key_leaf(j), name) ||
			     (keys[j].alias && !strcmp(keys[j].alias, name))))
				k = j;
		if (k < 0) {
			if (n)
				strbuf_addf(&msg, "unknown key '%s' in '%s'", name, section);
			else
				strbuf_addf(&msg, "unknown key '%s'", name);
			add_suggestion(&msg, name, section);
			rc = fail_at(w, kn->start_mark, msg.buf);
			strbuf_release(&msg);
			return rc;
		}
		if (walk_value(w, k, kn, vn) < 0)
			return -1;
	}
	return 0;
}

/*
 * Nesting deeper than this is refused before the document is built:
 * libyaml's scanner slows down quadratically with depth (100,000 nested
 * '[' took 53 s) and a configuration needs three levels.  The events are
 * read one by one and the check stops at the first one too deep, before
 * the scanner has gone far.
 */
#define CONFIG_MAX_DEPTH 32

static int yaml_depth_check(const char *path, const char *text, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int depth = 0, rc = 0;
	if (!yaml_parser_initialize(&p))
		return error("cannot initialise the YAML parser");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev))
			break; /* syntax errors are reported by the full parse */
		yaml_event_type_t t = ev.type;
		if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
			if (++depth > CONFIG_MAX_DEPTH) {
				rc = error("%s:%zu:%zu: bad YAML: nested deeper than %d levels",
					   path, ev.start_mark.line + 1, ev.start_mark.column + 1,
					   CONFIG_MAX_DEPTH);
				yaml_event_delete(&ev);
				break;
			}
		} else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
			depth--;
		}
		yaml_event_delete(&ev);
		if (t == YAML_STREAM_END_EVENT)
			break;
	}
	yaml_parser_delete(&p);
	return rc;
}

/* Parse the text of the file at path into cfg; -1 with error(). */
static int apply_yaml(struct config *cfg, const char *path, const char *text, size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	struct walk w = { path, &doc, cfg, STRBUF_INIT };
	int rc = 0;

	if (yaml_depth_check(path, text, len) < 0)
		return -1;
	if (!yaml_parser_initialize(&parser))
		return error("cannot initialise the YAML parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_mark_t m = parser.problem_mark;
		const char *what = parser.problem ? parser.problem : "cannot parse";
		if (parser.error == YAML_READER_ERROR) {
			/* the reader knows only a byte offset: count lines up to it */
			size_t line = 1, col = 1;
			for (size_t i = 0; i < parser.problem_offset && i < len; i++) {
				if (text[i] == '\n') {
					line++;
					col = 1;
				} else {
					col++;
				}
			}
			rc = error("%s:%zu:%zu: bad YAML: %s", path, line, col, what);
		} else
			rc = error("%s:%zu:%zu: bad YAML: %s", path, m.line + 1, m.column + 1,
				   what);
		yaml_parser_delete(&parser);
		return rc;
	}
	root = yaml_document_get_root_node(&doc);
	if (root && root->type == YAML_SCALAR_NODE && scalar_plain(root) && scalar_text(root) &&
	    is_null_word(scalar_text(root)))
		root = NULL; /* a file holding only comments or "~" */
	if (root && root->type != YAML_MAPPING_NODE)
		rc = fail_at(&w, root->start_mark,
			     "the configuration must be a mapping of keys to values");
	else if (root)
		rc = walk_mapping(&w, root, "");
	if (!rc) {
		/* a second document would silently be ignored: refuse it */
		yaml_document_t next;
		if (!yaml_parser_load(&parser, &next)) {
			yaml_mark_t m = parser.problem_mark;
			rc = error("%s:%zu:%zu: bad YAML: %s", path, m.line + 1, m.column + 1,
				   parser.problem ? parser.problem : "cannot parse");
		} else {
			yaml_node_t *r2 = yaml_document_get_root_node(&next);
			if (r2)
				rc = fail_at(&w, r2->start_mark,
					     "only one YAML document is allowed");
			yaml_document_delete(&next);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	strbuf_release(&w.origin);
	return rc;
}

static void note_file(struct config *cfg, const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	if (cfg->config_files)
		strbuf_addf(&sb, "%s, ", cfg->config_files);
	strbuf_addstr(&sb, path);
	free(cfg->config_files);
	cfg->config_files = strbuf_detach(&sb, NULL);
}

int config_load_file(struct config *cfg, const char *path, int must_exist)
{
	struct strbuf text = STRBUF_INIT;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		int e = errno;
		if (e == ENOENT && !must_exist)
			return 0;
		return error("cannot read config file '%s': %s", path, strerror(e));
	}
	/* read whole, with a limit: --config /dev/zero must end */
	if (strbuf_read_fd(&text, fd, READ_MAX_CONFIG) < 0) {
		int e = errno;
		char why[64];
		close(fd);
		strbuf_release(&text);
		return error("cannot read config file '%s': %s", path,
			     strbuf_read_failure(e, READ_MAX_CONFIG, why, sizeof(why)));
	}
	close(fd);
	rc = config_load_text(cfg, path, text.buf, text.len);
	strbuf_release(&text);
	return rc;
}

int config_load_text(struct config *cfg, const char *path, const char *text, size_t len)
{
	struct config scratch;
	int rc;
	if (len > READ_MAX_CONFIG) {
		char why[64];
		return error("cannot read config file '%s': %s", path,
			     strbuf_read_failure(EFBIG, READ_MAX_CONFIG, why, sizeof(why)));
	}
	config_copy(&scratch, cfg);
	rc = apply_yaml(&scratch, path, text, len);
	if (rc < 0) {
		config_free(&scratch);
		return -1;
	}
	note_file(&scratch, path);
	commit(cfg, &scratch);
	log_debug("read config file '%s'", path);
	return 0;
}

/* PALAVER_* variables that are not configuration keys. */
static const char *const other_env[] = {
	"PALAVER_REF_DIR",      /* tests and benchmarks: the reference data */
	"PALAVER_TEST_TIMEOUT", /* tests: seconds a test binary may run */
	NULL,
};

/*
 * A PALAVER_* variable that names no key is most likely a typo, which
 * would otherwise change nothing without a word: say so, with the nearest
 * name.
 */
static void warn_unknown_env(void)
{
	extern char **environ;
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
		if (n <= 8 || strncmp(*e, "PALAVER_", 8) || n > 200)
			continue;
		char name[208];
		memcpy(name, *e, n);
		name[n] = 0;
		int known = 0;
		const char *near = NULL;
		int best = 1000;
		for (int k = 0; k < N_KEYS && !known; k++) {
			if (!keys[k].env)
				continue;
			known = !strcmp(keys[k].env, name);
			/* compare what follows the prefix: every name shares it */
			if (is_close(name + 8, keys[k].env + 8, &best))
				near = keys[k].env;
		}
		for (int i = 0; other_env[i] && !known; i++)
			known = !strcmp(other_env[i], name);
		if (known)
			continue;
		if (near)
			warning("unknown environment variable $%s is ignored; did you mean $%s?",
				name, near);
		else
			warning("unknown environment variable $%s is ignored (see 'palaver config')",
				name);
	}
}

int config_load_env(struct config *cfg)
{
	struct config scratch;

	warn_unknown_env();

	config_copy(&scratch, cfg);
	for (int k = 0; k < N_KEYS; k++) {
		struct strbuf msg = STRBUF_INIT;
		const char *v;
		char origin[64];

		if (!keys[k].env || !(v = getenv(keys[k].env)))
			continue;
		if (set_scalar(&scratch, k, v, 1, &msg) < 0) {
			error("$%s: %s", keys[k].env, msg.buf);
			strbuf_release(&msg);
			config_free(&scratch);
			return -1;
		}
		snprintf(origin, sizeof(origin), "$%s", keys[k].env);
		set_origin(&scratch, k, origin);
	}
	commit(cfg, &scratch);
	return 0;
}

int config_load(struct config *cfg, const char *system_path, const char *explicit_path)
{
	struct strbuf user = STRBUF_INIT;
	struct config scratch;

	config_copy(&scratch, cfg);
	if (system_path && config_load_file(&scratch, system_path, 0) < 0)
		goto fail;
	/* without $XDG_CONFIG_HOME and $HOME there is no user file to read */
	if (xdg_path(&user, "XDG_CONFIG_HOME", ".config", "config.yaml") == 0 &&
	    config_load_file(&scratch, user.buf, 0) < 0)
		goto fail;
	if (explicit_path && config_load_file(&scratch, explicit_path, 1) < 0)
		goto fail;
	if (config_load_env(&scratch) < 0)
		goto fail;
	error_clear();
	strbuf_release(&user);
	commit(cfg, &scratch);
	return 0;
fail:
	strbuf_release(&user);
	config_free(&scratch);
	return -1;
}

int config_kv_dir(struct strbuf *out)
{
	return xdg_path(out, "XDG_CACHE_HOME", ".cache", "kv");
}

int config_select_kernels(const struct config *cfg)
{
	struct strbuf dir = STRBUF_INIT;
	/* no place for the cache (no $HOME) is no failure: measured each run */
	if (xdg_path(&dir, "XDG_CACHE_HOME", ".cache", "") < 0) {
		error_clear();
		strbuf_reset(&dir);
	}
	while (dir.len > 1 && dir.buf[dir.len - 1] == '/')
		dir.buf[--dir.len] = '\0';
	int rc = engine_kernels_configure(config_isa_names[cfg->isa], dir.buf);
	strbuf_release(&dir);
	return rc;
}

int config_kv_enabled(const struct config *cfg)
{
	return cfg->kv_max_disk > 0 && cfg->history_enabled;
}

#define BUILTIN_MODEL "palaver-tiny.gguf"

const char *config_remote_api_key(const struct config *cfg)
{
	const char *v = cfg->remote_api_key_env ? getenv(cfg->remote_api_key_env) : NULL;
	return v && *v ? v : NULL;
}

char *config_near_binary(const char *const *rel)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = 0;
	for (int i = 0; rel[i]; i++) {
		struct strbuf p = STRBUF_INIT;
		strbuf_addf(&p, "%s/%s", exe, rel[i]);
		char *real = realpath(p.buf, NULL);
		strbuf_release(&p);
		if (real && access(real, R_OK) == 0)
			return real;
		free(real);
	}
	return NULL;
}

char *config_builtin_model(void)
{
	/* relative to the binary: build/palaver in a source tree (models/ is
	 * its sibling), PREFIX/bin/palaver when installed (share/palaver/) */
	static const char *const rel[] = { "../models/" BUILTIN_MODEL,
					   "../share/palaver/" BUILTIN_MODEL, NULL };
	return config_near_binary(rel);
}

static uint64_t random_seed(void)
{
	uint64_t x = time_now_ns() ^ ((uint64_t)getpid() << 32);
	/* splitmix64 finaliser: nearby clock readings give unrelated seeds */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

void config_finish(struct config *cfg)
{
	int mk = config_key_index("model");
	if (cfg->model && !*cfg->model) { /* "": no model, on purpose */
		free(cfg->model);
		cfg->model = NULL;
	} else if (!cfg->model && !cfg->session && mk >= 0) {
		/* none named and no session will name one: palaver-tiny */
		char *path = config_builtin_model();
		if (path) {
			cfg->model = path;
			set_origin(cfg, mk, CONFIG_BUILTIN_ORIGIN);
		}
	}
	if (cfg->sampling.seed_random)
		cfg->sampling.seed = random_seed();
}

/* ---- printing ------------------------------------------------------------ */

static void add_quoted(struct strbuf *out, const char *s)
{
	strbuf_addch(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			strbuf_addf(out, "\\%c", c);
		else if (c == '\n')
			strbuf_addstr(out, "\\n");
		else if (c == '\t')
			strbuf_addstr(out, "\\t");
		else if (c < 0x20 || c == 0x7f)
			strbuf_addf(out, "\\x%02x", c);
		else
			strbuf_addch(out, (char)c);
	}
	strbuf_addch(out, '"');
}

/* The shortest %g form that reads back as the same double. */
static void add_double(struct strbuf *out, double d)
{
	char buf[40];
	/* whole numbers as written (300, not the shortest %g form 3e+02) */
	if (d == (double)(long long)d && d > -1e15 && d < 1e15) {
		strbuf_addf(out, "%lld", (long long)d);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	strbuf_addstr(out, buf);
}

static void add_size(struct strbuf *out, uint64_t v)
{
	static const struct {
		const char *sfx;
		int shift;
	} u[] = {
		{ "TiB", 40 },
		{ "GiB", 30 },
		{ "MiB", 20 },
		{ "KiB", 10 },
	};
	if (v)
		for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
			if (!(v & ((1ull << u[i].shift) - 1))) {
				strbuf_addf(out, "%llu", (unsigned long long)(v >> u[i].shift));
				strbuf_addstr(out, u[i].sfx);
				return;
			}
	strbuf_addf(out, "%llu", (unsigned long long)v);
}

void config_format_value(const struct config *cfg, int k, struct strbuf *out)
{
	switch (keys[k].type) {
	case K_STRING:
	case K_NSTRING: {
		const char *s = *CFIELD(cfg, k, char *);
		if (s)
			add_quoted(out, s);
		else
			strbuf_addstr(out, "null");
		break;
	}
	case K_INT: strbuf_addf(out, "%d", *CFIELD(cfg, k, int)); break;
	case K_DOUBLE: add_double(out, *CFIELD(cfg, k, double)); break;
	case K_BOOL: strbuf_addstr(out, *CFIELD(cfg, k, int) ? "true" : "false"); break;
	case K_ENUM: {
		int v = *CFIELD(cfg, k, int), n = 0;
		while (keys[k].names[n])
			n++;
		strbuf_addstr(out, v >= 0 && v < n ? keys[k].names[v] : "?");
		break;
	}
	case K_SIZE: add_size(out, *CFIELD(cfg, k, uint64_t)); break;
	case K_SEED:
		if (cfg->sampling.seed_random)
			strbuf_addstr(out, "random");
		else
			strbuf_addf(out, "%llu", (unsigned long long)cfg->sampling.seed);
		break;
	case K_LIST:
		strbuf_addch(out, '[');
		for (int i = 0; i < cfg->n_stop; i++) {
			if (i)
				strbuf_addstr(out, ", ");
			add_quoted(out, cfg->stop[i]);
		}
		strbuf_addch(out, ']');
		break;
	}
}

void config_print(const struct config *cfg, struct strbuf *out, int with_origin)
{
	const char *section = "";
	size_t section_len = 0;

	if (with_origin) {
		strbuf_addstr(out, "# palaver: the effective configuration; after each key, where "
				   "its value came from\n");
		strbuf_addf(out, "# files read: %s\n",
			    cfg->config_files ? cfg->config_files : "none");
	}
	for (int k = 0; k < N_KEYS; k++) {
		const char *dot = strchr(keys[k].name, '.');
		size_t n = dot ? (size_t)(dot - keys[k].name) : 0;
		size_t start;

		if (n != section_len || strncmp(section, keys[k].name, n)) {
			section = keys[k].name;
			section_len = n;
			if (n)
				strbuf_addf(out, "%.*s:\n", (int)n, keys[k].name);
		}
		start = out->len;
		strbuf_addf(out, "%s%s: ", n ? "  " : "", key_leaf(k));
		/* the built-in model is null in a file (its path is this build's) */
		int builtin = cfg->origin[k] && !strcmp(cfg->origin[k], CONFIG_BUILTIN_ORIGIN);
		if (builtin)
			strbuf_addstr(out, "null");
		else
			config_format_value(cfg, k, out);
		if (with_origin) {
			size_t w = out->len - start;
			do
				strbuf_addch(out, ' ');
			while (++w < 40);
			strbuf_addf(out, "# %s", cfg->origin[k] ? cfg->origin[k] : "default");
			if (builtin)
				strbuf_addf(out, ": %s", *FIELD(cfg, k, char *));
		}
		strbuf_addch(out, '\n');
	}
}

/* ---- the sampling keys: /set, sessions, requests ------------------------- */

#define SAMPLING_PREFIX "sampling."

static int is_sampling_key(int k)
{
	return !strncmp(keys[k].name, SAMPLING_PREFIX, strlen(SAMPLING_PREFIX));
}

/* The sampling key named by its leaf ("top_p") or dotted name; -1 if none. */
static int sampling_key(const char *name)
{
	for (int k = 0; k < N_KEYS; k++)
		if (is_sampling_key(k) &&
		    (!strcmp(keys[k].name, name) || !strcmp(key_leaf(k), name)))
			return k;
	return -1;
}

const char *const *config_sampling_names(void)
{
	static const char *names[CONFIG_MAX_KEYS + 1];
	if (!names[0]) {
		int n = 0;
		for (int k = 0; k < N_KEYS; k++)
			if (is_sampling_key(k))
				names[n++] = key_leaf(k);
		names[n] = NULL;
	}
	return names;
}

/* A scratch configuration holding only s, for the table's field offsets. */
static void sampling_scratch(struct config *tmp, const struct config_sampling *s)
{
	memset(tmp, 0, sizeof(*tmp));
	tmp->sampling = *s;
}

int config_sampling_set(struct config_sampling *s, const char *name, const char *text)
{
	struct strbuf msg = STRBUF_INIT;
	struct config tmp;
	int k = sampling_key(name);

	if (k < 0)
		return error("unknown setting '%s'", name);
	sampling_scratch(&tmp, s);
	if (set_scalar(&tmp, k, text, 1, &msg) < 0) {
		error("%s", msg.buf);
		strbuf_release(&msg);
		return -1;
	}
	if (keys[k].type == K_SEED && tmp.sampling.seed_random)
		tmp.sampling.seed = random_seed();
	*s = tmp.sampling;
	return 0;
}

void config_sampling_format(const struct config_sampling *s, const char *name, struct strbuf *out)
{
	struct config tmp;
	int k = sampling_key(name);
	if (k < 0)
		return;
	sampling_scratch(&tmp, s);
	tmp.sampling.seed_random = 0; /* the seed in use, not how it was chosen */
	config_format_value(&tmp, k, out);
}

void config_sampling_json(const struct config_sampling *s, struct strbuf *out)
{
	struct config tmp;
	int first = 1;
	sampling_scratch(&tmp, s);
	tmp.sampling.seed_random = 0;
	strbuf_addch(out, '{');
	for (int k = 0; k < N_KEYS; k++) {
		if (!is_sampling_key(k))
			continue;
		strbuf_addf(out, "%s\"%s\":", first ? "" : ",", key_leaf(k));
		config_format_value(&tmp, k, out);
		first = 0;
	}
	strbuf_addch(out, '}');
}

/*
 * Check one member of a session's sampling object: 0 when v is a number
 * that key k accepts (an integer for integer keys), else -1 with a line in
 * problems.
 */
static int check_json_value(int k, const struct json *v, struct strbuf *problems)
{
	struct strbuf msg = STRBUF_INIT;
	char text[40];
	int rc = 0;

	if (v->type != JSON_NUMBER) {
		strbuf_addf(&msg, "'%s' must be a number", keys[k].name);
		rc = -1;
	} else {
		snprintf(text, sizeof(text), "%.17g", v->number);
		if (keys[k].type == K_SEED) {
			if (!(v->number >= 0 && v->number <= 18446744073709551615.0) ||
			    v->number != (double)(uint64_t)v->number) {
				strbuf_addf(&msg, "'%s' must be an integer from 0 to %llu, not %s",
					    keys[k].name, (unsigned long long)UINT64_MAX, text);
				rc = -1;
			}
		} else if (keys[k].type == K_INT &&
			   /* in range before the cast: a double past long's is undefined */
			   !(v->number > -9.2e18 && v->number < 9.2e18 &&
			     v->number == (double)(long)v->number)) {
			strbuf_addf(&msg, "'%s' must be an integer, not %s", keys[k].name, text);
			rc = -1;
		} else {
			rc = check_range(k, v->number, text, &msg);
		}
	}
	if (rc < 0)
		strbuf_addf(problems, "%s%s", problems->len ? "\n" : "", msg.buf);
	strbuf_release(&msg);
	return rc;
}

int config_sampling_from_json(struct config_sampling *s, const struct json *obj,
			      const struct config *cfg, struct strbuf *problems)
{
	struct config tmp;
	int bad = 0;
	if (!obj || obj->type != JSON_OBJECT)
		return 0;
	sampling_scratch(&tmp, s);
	for (int k = 0; k < N_KEYS; k++) {
		const struct json *v = is_sampling_key(k) ? json_get(obj, key_leaf(k)) : NULL;
		/* the seed stays this run's: a JSON number cannot hold all 64 bits */
		if (!v || keys[k].type == K_SEED || (cfg && cfg->origin[k]))
			continue;
		if (check_json_value(k, v, problems) < 0)
			bad++;
		else if (keys[k].type == K_INT)
			*FIELD(&tmp, k, int) = (int)v->number;
		else if (keys[k].type == K_DOUBLE)
			*FIELD(&tmp, k, double) = v->number;
	}
	*s = tmp.sampling;
	return bad;
}

int config_sampling_check_json(const struct json *obj, const char *src, struct strbuf *fixed,
			       struct strbuf *problems)
{
	int bad = 0;
	if (!obj || obj->type != JSON_OBJECT)
		return 0;
	for (size_t i = 0; i < obj->n; i++) {
		int k = sampling_key(obj->keys[i]);
		if (k >= 0 && check_json_value(k, &obj->items[i], problems) < 0)
			bad++;
	}
	if (!bad)
		return 0;
	/* the object again without the members that failed, the rest verbatim */
	strbuf_addch(fixed, '{');
	for (size_t i = 0, n = 0; i < obj->n; i++) {
		const struct json *v = &obj->items[i];
		struct strbuf ignore = STRBUF_INIT;
		int k = sampling_key(obj->keys[i]);
		int keep = k < 0 || check_json_value(k, v, &ignore) == 0;
		strbuf_release(&ignore);
		if (!keep)
			continue;
		strbuf_addstr(fixed, n++ ? ",\"" : "\"");
		strbuf_add_json_escaped(fixed, obj->keys[i], strlen(obj->keys[i]));
		strbuf_addstr(fixed, "\":");
		strbuf_add(fixed, src + v->start, v->end - v->start);
	}
	strbuf_addch(fixed, '}');
	return bad;
}

/* ---- to the engine -------------------------------------------------------- */

void config_to_engine(const struct config *cfg, const char *model, const char *remote_url,
		      const char *remote_model, struct engine_config *ec)
{
	memset(ec, 0, sizeof(*ec));
	ec->model_path = model;
	ec->n_threads = cfg->threads;
	ec->n_ctx = cfg->ctx;
	ec->n_batch = cfg->batch_size;
	ec->kv_type = ENGINE_KV_F16;
	ec->backend = cfg->backend == BACKEND_CUDA  ? ENGINE_BACKEND_CUDA
		      : cfg->backend == BACKEND_CPU ? ENGINE_BACKEND_CPU
						    : ENGINE_BACKEND_AUTO;
	ec->chat_template = cfg->chat_template ? cfg->chat_template : "auto";
	ec->overflow = cfg->context_overflow == OVERFLOW_SHIFT         ? ENGINE_OVERFLOW_SHIFT
		       : cfg->context_overflow == OVERFLOW_DROP_OLDEST ? ENGINE_OVERFLOW_DROP_OLDEST
								       : ENGINE_OVERFLOW_STOP;
	ec->keep = cfg->keep;
	ec->max_buffered_tokens = cfg->max_buffered_tokens;
	ec->memory_limit = cfg->memory_limit;
	ec->memory_strict = cfg->memory_mode == MEMORY_STRICT;
	ec->mlock = cfg->memory_lock;
	ec->no_repack = !cfg->repack;
	ec->kv_max_disk = cfg->kv_max_disk; /* the caller sets kv_dir */
	if (remote_url) {
		ec->remote_url = remote_url;
		ec->remote_model = remote_model;
		/* the key lives in the environment only: never in the config,
		 * the history or the log */
		ec->remote_api_key = config_remote_api_key(cfg);
		ec->remote_timeout = cfg->remote_timeout;
		ec->remote_retries = cfg->remote_retries;
	}
}

int config_to_request(const struct config *cfg, const struct config_sampling *s,
		      struct engine_request *rq)
{
	struct config tmp;
	sampling_scratch(&tmp, s);
	/* every number within the table's range, whoever set it */
	for (int k = 0; k < N_KEYS; k++) {
		struct strbuf msg = STRBUF_INIT, text = STRBUF_INIT;
		double v;
		if (!is_sampling_key(k) || (keys[k].type != K_INT && keys[k].type != K_DOUBLE))
			continue;
		v = keys[k].type == K_INT ? *CFIELD(&tmp, k, int) : *CFIELD(&tmp, k, double);
		config_format_value(&tmp, k, &text);
		int rc = check_range(k, v, text.buf, &msg);
		if (rc < 0)
			error("%s", msg.buf);
		strbuf_release(&msg);
		strbuf_release(&text);
		if (rc < 0)
			return -1;
	}
	memset(rq, 0, sizeof(*rq));
	rq->add_generation_prompt = 1;
	rq->sampling.temperature = (float)s->temperature;
	rq->sampling.top_k = s->top_k;
	rq->sampling.top_p = (float)s->top_p;
	rq->sampling.min_p = (float)s->min_p;
	rq->sampling.typical_p = (float)s->typical_p;
	rq->sampling.repeat_penalty = (float)s->repeat_penalty;
	rq->sampling.repeat_last_n = s->repeat_last_n;
	rq->sampling.presence_penalty = (float)s->presence_penalty;
	rq->sampling.frequency_penalty = (float)s->frequency_penalty;
	rq->sampling.seed = s->seed;
	rq->max_tokens = s->max_tokens;
	rq->max_time = cfg->max_time;
	rq->think = cfg->think == THINK_ON    ? ENGINE_THINK_ON
		    : cfg->think == THINK_OFF ? ENGINE_THINK_OFF
					      : ENGINE_THINK_DEFAULT;
	/* the two enums list the same levels in the same order */
	rq->effort = (enum engine_effort)cfg->reasoning_effort;
	for (int i = 0; i < cfg->n_stop && i < ENGINE_MAX_STOP; i++)
		rq->stop[rq->n_stop++] = cfg->stop[i];
	return 0;
}
