/* The effective configuration: built-in defaults < /etc < XDG < --config < PALAVER_* < flags. */
#ifndef PALAVER_CONFIG_H
#define PALAVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct strbuf;

enum config_backend { BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA };
enum config_overflow { OVERFLOW_STOP, OVERFLOW_DROP_OLDEST, OVERFLOW_SHIFT };
enum config_memory_mode { MEMORY_STRICT, MEMORY_WARN };
/* think: whether a model whose template switches thinking (enable_thinking) thinks */
enum config_think { THINK_AUTO, THINK_ON, THINK_OFF };
/* reasoning_effort: harmony's (gpt-oss) reasoning effort; auto: the template's */
enum config_effort { EFFORT_AUTO, EFFORT_LOW, EFFORT_MEDIUM, EFFORT_HIGH };
/* reasoning: what batch mode does with a reply's thinking */
enum config_reasoning { BATCH_REASONING_HIDE, BATCH_REASONING_SHOW, BATCH_REASONING_STDERR };
/* ui.thinking: how the chat shows a reply's thinking */
enum config_thinking_view { THINKING_COLLAPSE, THINKING_SHOW, THINKING_HIDE };
/* --split: how batch mode cuts its input into turns */
enum batch_split { BATCH_SPLIT_BLANK, BATCH_SPLIT_LINE, BATCH_SPLIT_ALL };

#define CONFIG_MAX_STOP 16
#define CONFIG_MAX_KEYS 64 /* room for the key table in config.c (checked there) */

/* The system-wide file; a build may move it with -DPALAVER_SYSCONFDIR=/dir. */
#ifndef PALAVER_SYSCONFDIR
#define PALAVER_SYSCONFDIR "/etc"
#endif
#define CONFIG_SYSTEM_PATH PALAVER_SYSCONFDIR "/palaver/config.yaml"

struct config_sampling {
	double temperature;       /* 0 = greedy */
	int top_k;                /* 0 = off */
	double top_p;             /* 1 = off */
	double min_p;             /* 0 = off */
	double typical_p;         /* 1 = off */
	double repeat_penalty;    /* 1 = off */
	int repeat_last_n;        /* tokens the penalties look back over; -1 = whole context */
	double presence_penalty;  /* 0 = off */
	double frequency_penalty; /* 0 = off */
	uint64_t seed;            /* fixed seed: same input, same output */
	int max_tokens;           /* per reply; -1 = until context is full */
	int seed_random;          /* 1: `seed: random` (the default); config_finish() then
				    draws seed from the clock, so consumers always read seed */
};

/*
 * Invariants: every char * field is NULL or a malloc'd string owned by the
 * config (config_free() frees them; use config_set() or xstrdup to change
 * one); stop[0..n_stop) are malloc'd; origin[k] is NULL (built-in default)
 * or a malloc'd description of where key k's value came from.
 */
struct config {
	char *model;                           /* path to the GGUF file, NULL = none configured */
	int ctx;                               /* context length, 0 = the model's */
	int threads;                           /* 0 = online cores */
	enum config_backend backend;           /* auto, cpu, cuda */
	int batch_size;                        /* prefill chunk in tokens */
	struct config_sampling sampling;       /* the sampling: section */
	char *system_prompt;                   /* NULL = none */
	char *chat_template;                   /* "auto", a template name, or a file path */
	enum config_think think;               /* auto: as the template decides */
	enum config_effort reasoning_effort;   /* auto: as the template decides */
	enum config_reasoning reasoning;       /* batch mode: hide, show or stderr */
	enum config_overflow context_overflow; /* when the conversation outgrows ctx */
	int keep;                              /* tokens kept at the start on a context shift */
	char *stop[CONFIG_MAX_STOP];           /* (n_stop) strings that end a reply */
	int n_stop;                            /* 0..CONFIG_MAX_STOP */
	int max_buffered_tokens;               /* engine event queue bound */
	double max_time;                       /* seconds per reply, 0 = unlimited */
	uint64_t memory_limit;                 /* bytes, 0 = unlimited */
	enum config_memory_mode memory_mode;   /* strict: refuse; warn: go on */
	int memory_lock;                       /* 1: pin the weights in RAM (mlock) */
	char *history_path;                    /* NULL = $XDG_DATA_HOME/palaver/history.db */
	int history_enabled;                   /* 0: save nothing */
	uint64_t kv_max_disk;                  /* bytes of saved KV states; 0 = none saved */
	int repack;                            /* copy weights into faster layouts at load */
	int isa;                               /* index in config_isa_names: 0 = auto */
	char *ui_theme;                        /* "default", "mono", ... */
	int ui_status_pane;                    /* 1: show the status pane */
	int ui_word_wrap;                      /* 1: wrap at word boundaries */
	enum config_thinking_view ui_thinking; /* collapse, show or hide */
	char *log_file;                        /* NULL = $XDG_STATE_HOME/palaver/palaver.log */
	int log_level;                         /* enum log_level */
	char *remote_url;         /* an OpenAI-compatible server instead of model, NULL = none */
	char *remote_model;       /* the model there, NULL = the first it lists */
	char *remote_api_key_env; /* the environment variable holding the API key, NULL = none */
	double remote_timeout;    /* seconds of silence from the server, 0 = none */
	int remote_retries;       /* tries again before the first text */

	/* run-time only, from flags */
	char *prompt;  /* -p: one-shot prompt */
	int batch;     /* --batch */
	int json;      /* --json */
	int verbose;   /* -v, repeatable */
	char *session; /* --session ID */
	int split;     /* --split: enum batch_split */
	int stats;     /* --stats: batch timings on stderr */

	/* bookkeeping for `palaver config`: origin[k] for key index k is where
	 * its value came from ("FILE:LINE", "$PALAVER_X", "--flag"), NULL for
	 * the built-in default; config_files lists the files read ("a, b") */
	char *origin[CONFIG_MAX_KEYS];
	char *config_files;
};

/* Built-in defaults (no files read).  Every field is set; origins are NULL. */
void config_init(struct config *cfg);
/* Free every owned string; cfg is left zeroed (config_init() it to reuse it). */
void config_free(struct config *cfg);
/* Deep copy: dst must not own anything yet (fresh or after config_free). */
void config_copy(struct config *dst, const struct config *src);

/*
 * Apply one YAML file on top of cfg.  The file is read into a scratch copy
 * and committed only when every key in it is valid, so on failure cfg is
 * untouched.  A missing file is skipped (returns 0) unless must_exist.
 * Returns 0, or -1 with error() holding one line "FILE:LINE:COL: message"
 * (1-based), or "cannot read config file 'FILE': reason".
 */
int config_load_file(struct config *cfg, const char *path, int must_exist);
/* The same for the text of a file already read (at most READ_MAX_CONFIG
 * bytes); path names it in messages.  (The config fuzz target's way in.) */
int config_load_text(struct config *cfg, const char *path, const char *text, size_t len);
/* Apply the PALAVER_* variables of the environment (see config_env_name()).
 * -1 with error() "$PALAVER_X: message"; cfg untouched on failure. */
int config_load_env(struct config *cfg);
/*
 * All file and environment layers in order: system_path (NULL skips it;
 * main passes CONFIG_SYSTEM_PATH), $XDG_CONFIG_HOME/palaver/config.yaml
 * (~/.config fallback), explicit_path (--config; must exist), then the
 * environment.  Nothing is applied unless all of them are valid.
 */
int config_load(struct config *cfg, const char *system_path, const char *explicit_path);
/* After all layers and flags: draw a random seed if asked for; when the
 * model is null and no session is resumed, use the built-in one
 * (config_builtin_model(); its origin is CONFIG_BUILTIN_ORIGIN); a model set
 * to "" becomes NULL (no model, on purpose).  Call once. */
void config_finish(struct config *cfg);
/* Where palaver-tiny is: ../models/palaver-tiny.gguf or
 * ../share/palaver/palaver-tiny.gguf from the binary's folder; a malloc'd
 * absolute path, or NULL when neither is readable. */
char *config_builtin_model(void);
#define CONFIG_BUILTIN_ORIGIN "built-in model"
/* The first of the paths rel (NULL-terminated, relative to the folder of
 * the running binary) that is readable: a malloc'd absolute path, or NULL. */
char *config_near_binary(const char *const *rel);

/*
 * Set one key by its dotted name ("threads", "sampling.temperature",
 * "memory.limit") from text, as a flag or environment variable would;
 * origin (copied) says where it came from.  The stop list cannot be set this
 * way.  Returns 0, or -1 with error() "'KEY' must be ..." and cfg untouched.
 */
int config_set(struct config *cfg, const char *key, const char *value, const char *origin);

/* The remote server's API key: the value of the variable remote.api_key_env
 * names, NULL when none is named or it is unset or empty.  The key is read
 * from the environment only, when it is used, and kept nowhere. */
const char *config_remote_api_key(const struct config *cfg);

/* The key table, for `palaver config` and the tests. */
int config_key_count(void);
const char *config_key_name(int k);    /* dotted name, NULL past the end */
int config_key_index(const char *key); /* -1 when unknown */
const char *config_env_name(int k);    /* "PALAVER_THREADS", NULL = none */
/* Append key k's value as YAML text (a scalar, or a flow sequence). */
void config_format_value(const struct config *cfg, int k, struct strbuf *out);
/* "auto", "cpu" or "cuda". */
const char *config_backend_name(enum config_backend b);

/* The whole configuration as YAML; with_origin adds "# origin" to each key. */
void config_print(const struct config *cfg, struct strbuf *out, int with_origin);

/* The folder of saved KV states, $XDG_CACHE_HOME/palaver/kv (~/.cache
 * fallback), into out.  0 or -1 (error()). */
int config_kv_dir(struct strbuf *out);
/* Hand the engine the isa key and the folder of its per-CPU kernel choice
 * ($XDG_CACHE_HOME/palaver); measured at the first model load.  -1
 * (error()) for a level this CPU lacks. */
int config_select_kernels(const struct config *cfg);
/* 1 when replies save and resume KV states: kv_cache.max_disk is not 0 and
 * the history is on (a state belongs to a session). */
int config_kv_enabled(const struct config *cfg);

/* ---- the sampling keys ("sampling.*" in the table): /set, sessions, requests ---- */

struct json;
struct engine_config;
struct engine_request;

/* Their leaf names in table order ("temperature", "top_k", ...), NULL-terminated. */
const char *const *config_sampling_names(void);
/*
 * Set one of s, named by its leaf ("top_p") or dotted name, from text with
 * the table's type and range, as a flag would; "seed random" draws a new
 * seed.  0, or -1 with error() ("'sampling.top_p' must be ...") and s
 * untouched.
 */
int config_sampling_set(struct config_sampling *s, const char *name, const char *text);
/* Append the value of the key named (leaf or dotted) as YAML text. */
void config_sampling_format(const struct config_sampling *s, const char *name, struct strbuf *out);
/* s as the JSON object a session records: {"temperature":0.8,...,"max_tokens":-1}. */
void config_sampling_json(const struct config_sampling *s, struct strbuf *out);
/*
 * Take a session's sampling object (NULL or not an object: nothing) into
 * s: each sampling key present and valid (a number within the table's
 * range; an integer for integer keys) is applied, except those whose origin
 * cfg records (set for this run; cfg NULL = none) and the seed (a JSON
 * number cannot hold 64 bits).  Each invalid one is left out with a line in
 * problems.  Returns how many were invalid.
 */
int config_sampling_from_json(struct config_sampling *s, const struct json *obj,
			      const struct config *cfg, struct strbuf *problems);
/*
 * Check a sampling object as config_sampling_from_json would (the seed
 * included).  0 when every known key is valid; else the number of invalid
 * ones, a line for each in problems, and in fixed the object without them
 * (the other members as they are in src, the text obj was parsed from).
 */
int config_sampling_check_json(const struct json *obj, const char *src, struct strbuf *fixed,
			       struct strbuf *problems);

/* The engine configuration the settings ask for, to load model, or to talk
 * to the server at remote_url (NULL: a local model) about remote_model. */
void config_to_engine(const struct config *cfg, const char *model, const char *remote_url,
		      const char *remote_model, struct engine_config *ec);
/*
 * A request with the sampling s (the chat's copy, changed by /set, or
 * cfg->sampling), cfg's max_time, think switch and stop strings; the messages or tokens
 * are the caller's to add.  Every sampling number is checked against the
 * key table first: -1 with error() naming the key when one is out of range.
 */
int config_to_request(const struct config *cfg, const struct config_sampling *s,
		      struct engine_request *rq);

/* The kernel levels "isa" takes (NULL-terminated; 0 = auto: measured per CPU). */
extern const char *const config_isa_names[];

/* Edit distance (Levenshtein, with adjacent transposition as one edit). */
int config_edit_distance(const char *a, const char *b);

/*
 * Subcommands accept the model-ish global flags after their name too:
 * -m/--model, -t/--threads, --ctx, -n/--max-tokens, --temp, --top-k,
 * --top-p, --min-p, --seed, -s/--system, --backend, --batch-size,
 * --chat-template, --history FILE, --no-history (both "--flag VALUE" and
 * "--flag=VALUE"; "-mVALUE" for short ones).  Call it in your option loop
 * after checking your own flags (so that a flag of yours with the same name
 * wins):
 *
 *	for (int i = 1; i < argc; i++) {
 *		int r;
 *		if (!strcmp(argv[i], "--mine")) { ...; continue; }
 *		r = config_parse_common_flag(cfg, &i, argc, argv);
 *		if (r < 0) {
 *			fprintf(stderr, "palaver: %s\n", error_message());
 *			return EXIT_USAGE;
 *		}
 *		if (r > 0)
 *			continue;
 *		... positional argument or unknown option ...
 *	}
 *
 * Returns 1 when argv[*i] was a common flag: it is applied to cfg (origin
 * "--flag") and *i is left on the last argument consumed.  0 when argv[*i]
 * is not one (nothing changed).  -1 when it is one but its value is missing
 * or invalid (error() holds "option '--threads': ...").
 */
int config_parse_common_flag(struct config *cfg, int *i, int argc, char **argv);

#endif
