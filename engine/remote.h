/* A client of OpenAI-compatible chat-completion servers (llama-server, ollama, vLLM), for the engine thread. */
#ifndef PALAVER_REMOTE_H
#define PALAVER_REMOTE_H

#include "engine.h"
#include "strbuf.h"

#include <stdatomic.h>
#include <stddef.h>

/*
 * Everything here runs on one thread (the engine's, or a subcommand's) and
 * waits on the network in slices of at most REMOTE_SLICE_MS, looking at the
 * cancel and stop flags between them: a cancel closes the connection within
 * one slice.
 */
#define REMOTE_SLICE_MS 20
#define REMOTE_TIMEOUT_DEFAULT 300.0 /* seconds of silence from the server */

struct remote_params {
	const char *url;     /* "http://host:8080" (then /v1 is added) or ".../v1" */
	const char *model;   /* NULL or "" = the first model the server lists */
	const char *api_key; /* NULL = none; sent as a bearer token, never shown */
	double timeout;      /* seconds without a byte from the server, 0 = none */
	int retries;         /* tries again after the first, only before any text */
	atomic_int *cancel;  /* the current request (NULL = none) */
	atomic_int *stop;    /* the whole client (NULL = none) */
};

struct remote;

/* Checks the URL only (nothing is sent): NULL with error() when it is not
 * an http or https URL. */
struct remote *remote_open(const struct remote_params *p);
void remote_close(struct remote *r);
/* The server as messages and the status pane show it: scheme, host, port
 * and path, never user names, passwords or queries. */
const char *remote_display_url(const struct remote *r);

/* GET /models: 0 and a malloc'd array (engine_models_free), or -1 with
 * error().  owner is "llamacpp", "vllm", "library" (ollama), ...; n_ctx is
 * vLLM's max_model_len. */
int remote_models(struct remote *r, struct engine_model_entry **out, int *n);

/*
 * Find the model to use (the configured one must be listed; else the first)
 * and what the server says of its context (vLLM's max_model_len,
 * llama-server's /props), and fill info.  Something the user should know
 * but that does not stop us goes to warn.  0, or -1 with error().
 */
int remote_connect(struct remote *r, struct engine_info *info, struct strbuf *warn);

struct remote_request {
	const struct engine_message *messages;
	int n_messages;
	const struct engine_sampling *sampling;
	int max_tokens;  /* -1 = the server's limit */
	double deadline; /* time_now_ms() at which to stop (TIMEOUT), 0 = none */
	char *const *stop;
	int n_stop;
	enum engine_think think; /* sent as chat_template_kwargs.enable_thinking */
	/* sent as reasoning_effort (OpenAI's and vLLM's) and as
	 * chat_template_kwargs.reasoning_effort (llama-server's templates) */
	enum engine_effort effort;
};

/* Text as it arrives (complete UTF-8, invalid bytes replaced by U+FFFD);
 * reasoning: 1 for a reasoning_content delta.  Non-zero ends the reply
 * (STOP_STRING). */
typedef int (*remote_text_fn)(void *ud, int reasoning, const char *text, size_t len);

struct remote_result {
	enum engine_stop_reason stop; /* EOS, MAX_TOKENS, STOP_STRING, CANCELLED, TIMEOUT, ERROR */
	char *message;                /* ERROR: what went wrong (malloc'd) */
	int chunks;                   /* deltas that carried text */
	double t_first;               /* time_now_ms() of the first text, 0 = none */
	int attempts;                 /* requests sent (retries + 1) */
	/* the server's figures, when it sent them (usage: 1) */
	int usage;
	int prompt_tokens, completion_tokens, cached_tokens;
	double prompt_ms, prompt_tps, decode_tps; /* llama-server's timings, 0 = not sent */
};

/* Stream one reply.  Returns 0 with res filled (res->message to free)
 * however the reply ended. */
int remote_chat(struct remote *r, const struct remote_request *req, remote_text_fn fn, void *ud,
		struct remote_result *res);

/* Replace invalid UTF-8 in s[0..n) by U+FFFD into out; the number replaced. */
size_t remote_utf8_clean(const char *s, size_t n, struct strbuf *out);

#endif
