/* The status pane: model, state, speed, context and memory, as plain data. */
#ifndef PALAVER_STATUS_PANE_H
#define PALAVER_STATUS_PANE_H

#include <stddef.h>
#include <stdint.h>

enum status_state {
	STATE_NO_MODEL,
	STATE_LOADING, /* progress: bytes */
	STATE_READY,
	STATE_PREFILL, /* progress: prompt tokens */
	STATE_GENERATING,
	STATE_FAILED,
};

#define STATUS_SPARK_MAX 64 /* speed samples kept for the sparkline */

/* Everything the pane shows; the app loop fills it, the pane only draws. */
struct status_info {
	char model[128]; /* model name, "" when none */
	char type[32];   /* dominant weight type, e.g. "Q4_K" */
	uint64_t file_bytes;
	uint64_t n_params;
	char backend[16]; /* "cpu", "cuda", "remote" */
	char device[64];  /* the GPU, shown instead of the threads; "" for none */
	char server[96];  /* remote: the server's URL, "" for a local model */
	int threads;
	enum status_state state;
	uint64_t done, total; /* progress of LOADING / PREFILL */
	int have_stats;       /* a reply finished: the figures below are valid */
	double ttft_ms;
	double prompt_tps;
	double gen_tps; /* during a reply: the running rate */
	int gen_tokens;
	float spark[STATUS_SPARK_MAX]; /* generation t/s samples of the last reply, oldest first */
	int n_spark;
	int ctx_used, ctx_total; /* tokens; ctx_total 0 = unknown */
	int reused;              /* prompt tokens taken from the KV cache */
	/* remote: the token counts are the server's (1) or counted here (0);
	 * its own generation speed when it sends one, else 0 */
	int server_usage;
	double server_tps;
	uint64_t rss;    /* bytes */
	char title[128]; /* the session's title */
	char notice[96]; /* e.g. "history unavailable"; "" for none */
};

/* Styles of the spans of a formatted line (mapped to attributes by theme.c). */
enum status_style {
	SS_VALUE,
	SS_LABEL,
	SS_TITLE,
	SS_OK,
	SS_WARN,
	SS_BAD,
	SS_BAR,
};

#define STATUS_LINE_BYTES 512
#define STATUS_LINE_SPANS 16

/* A formatted line: text (UTF-8) and styled spans covering it in order. */
struct status_line {
	char text[STATUS_LINE_BYTES];
	size_t len;
	struct {
		unsigned short start, len;
		unsigned char style;
	} spans[STATUS_LINE_SPANS];
	int n_spans;
};

/* Unicode bars: a frac (0..1) progress bar `width` cells wide with eighth
 * blocks; the sparkline of the last `width` samples, scaled to their max.
 * Both write NUL-terminated UTF-8 into out and return its length. */
size_t status_progress_bar(double frac, int width, char *out, size_t cap);
size_t status_sparkline(const float *v, int n, int width, char *out, size_t cap);
/* "12.3" below 100, "1234" above. */
const char *status_format_rate(char *buf, size_t cap, double tps);
/* "260K", "1.1B" */
const char *status_format_count(char *buf, size_t cap, uint64_t n);
/* SS_OK, SS_WARN at 75 %, SS_BAD at 90 % of the context. */
enum status_style status_ctx_style(int used, int total);
const char *status_state_name(enum status_state s);

/* Lines for the column (width columns, at most max lines); returns the count. */
int status_format_column(const struct status_info *s, int width, struct status_line *out, int max);
/* 1 or 2 lines for the bar; returns the count. */
int status_format_bar(const struct status_info *s, int width, int rows, struct status_line *out);

struct _win_st;
/* Draw into win: as a column (a separator at the left edge) or a bar. */
void status_pane_draw(const struct status_info *s, struct _win_st *win, int column, int height,
		      int width);
#endif
