/* The effective configuration: built-in defaults < /etc < XDG < --config < PALAVER_* < flags. */
#ifndef PALAVER_CONFIG_H
#define PALAVER_CONFIG_H

#include <stdint.h>

enum config_backend { BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA };
enum config_overflow { OVERFLOW_STOP, OVERFLOW_DROP_OLDEST, OVERFLOW_SHIFT };
enum config_memory_mode { MEMORY_STRICT, MEMORY_WARN };

#define CONFIG_MAX_STOP 16

struct config_sampling {
	double temperature;      /* 0 = greedy */
	int top_k;               /* 0 = off */
	double top_p;            /* 1 = off */
	double min_p;            /* 0 = off */
	double typical_p;        /* 1 = off */
	double repeat_penalty;   /* 1 = off */
	int repeat_last_n;       /* tokens the penalties look back over */
	double presence_penalty; /* 0 = off */
	double frequency_penalty;/* 0 = off */
	uint64_t seed;           /* fixed seed: same input, same output */
	int max_tokens;          /* per reply; -1 = until context is full */
};

struct config {
	char *model;             /* path to the GGUF file, NULL = none configured */
	int ctx;                 /* context length, 0 = the model's */
	int threads;             /* 0 = online cores */
	enum config_backend backend;
	int batch_size;          /* prefill chunk in tokens */
	struct config_sampling sampling;
	char *system_prompt;     /* NULL = none */
	char *chat_template;     /* "auto", a template name, or a file path */
	enum config_overflow context_overflow;
	int keep;                /* tokens kept at the start on a context shift */
	char *stop[CONFIG_MAX_STOP];
	int n_stop;
	int max_buffered_tokens; /* engine event queue bound */
	double max_time;         /* seconds per reply, 0 = unlimited */
	uint64_t memory_limit;   /* bytes, 0 = unlimited */
	enum config_memory_mode memory_mode;
	char *history_path;      /* NULL = $XDG_DATA_HOME/palaver/history.db */
	int history_enabled;
	char *ui_theme;          /* "default", "mono", ... */
	int ui_status_pane;
	int ui_word_wrap;
	char *log_file;          /* NULL = $XDG_STATE_HOME/palaver/palaver.log */
	int log_level;           /* enum log_level */

	/* run-time only, from flags */
	char *prompt;            /* -p: one-shot prompt */
	int batch;               /* --batch */
	int json;                /* --json */
	int verbose;             /* -v, repeatable */
	char *session;           /* --session ID */
};

#endif
