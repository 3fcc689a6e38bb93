/* The engine service: one background thread that owns the model; requests in, events out. */
#ifndef PALAVER_ENGINE_H
#define PALAVER_ENGINE_H

#include <stddef.h>
#include <stdint.h>

/*
 * THREAD-SAFETY CONTRACT
 *  - engine_open() and engine_close() are called by one owner thread (the UI
 *    or batch thread).  engine_close() may be called in any state (loading,
 *    prefilling, generating, idle, failed, with undrained events): it
 *    cancels, joins the engine thread and frees everything, queued events
 *    included.
 *  - engine_submit(), engine_next_event(), engine_info() are called from the
 *    owner thread only.
 *  - engine_cancel() is safe from any thread and from a signal handler (it
 *    only stores to an atomic flag).  It cancels the request running or
 *    queued; a cancel while idle is forgotten by the next engine_submit().
 *  - Events are produced by the engine thread and consumed by the owner:
 *    wait until engine_wakeup_fd() is readable (poll()), then drain with
 *    engine_next_event() until it returns 0.  The fd is readable exactly
 *    while events wait.  The queue is bounded (max_buffered_tokens): a
 *    consumer that stops draining makes the engine wait, never grow;
 *    progress events are never waited for: when the queue is full the
 *    newest figure replaces the last progress event queued (or is dropped).
 *
 * EVENT ORDER
 *  LOAD_PROGRESS* [WARNING*] then READY or ERROR (the engine is then dead:
 *  engine_submit() fails).  Each request then gives PREFILL_PROGRESS*
 *  TOKEN* and exactly one DONE, or one ERROR when it was refused before
 *  any work (empty prompt, a token id out of range, a prompt that cannot
 *  fit the context: the message has the numbers).  A request may be
 *  submitted while the model loads: it runs after READY.
 *  After a cancel, TOKEN events that found the queue full are dropped; the
 *  DONE text (the whole answer, never a stop string) is authoritative.
 *  A forward pass that yields a logit that is NaN or infinite (a model file
 *  with broken weights) ends the reply with DONE, stop_reason error and a
 *  message, rather than sampling from garbage.
 *  A request that names a session while saved states are on
 *  (engine_config.kv_dir) is followed, after its DONE, by exactly one
 *  KV_SAVED; it comes before any event of the next request.
 *  A remote engine keeps this order: READY once the server listed its
 *  models; each request gives one PREFILL_PROGRESS 0/0 (the server tells
 *  nothing of its prefill) when sent; a network, HTTP or stream failure is
 *  a DONE with stop reason error and the partial reply (never an ERROR).
 *
 * REASONING
 *  A reply that thinks first (it opens with <think>, or the template's own
 *  marker, or the prompt opened the block) is split as it streams: each
 *  TOKEN event is either thinking (reasoning = 1) or answer, the markers
 *  and the blank lines after them never sent, even when a marker arrives
 *  in pieces.  DONE's text is the answer alone; its reasoning_text holds the
 *  thinking.  engine_stop_thinking() ends a thinking block early: the
 *  engine writes the close marker itself and the model answers.  A remote
 *  server's reasoning_content arrives as thinking.
 *
 * KV REUSE
 *  The engine keeps the tokens its cache holds; a request reuses the longest
 *  common prefix with its prompt and prefills only the rest (at least the
 *  last prompt token, for its logits).  stats.reused_tokens counts them; a
 *  follow-up turn, a regenerate and an edit of the last message cost only
 *  their new tokens.
 *
 * SAVED STATES (engine_config.kv_dir, engine_request.session)
 *  After the DONE of a request that names a session, the engine thread
 *  writes what the cache holds to kv_dir/SESSION-KEY.kv (KEY: the model's
 *  identity, the KV type and the cache's shape), atomically (a temporary
 *  file, fsync, rename: a crash leaves the previous state or none, never a
 *  partial one), then reports KV_SAVED.  The owner is not blocked: it may
 *  submit the next request at once, which stops a save in progress (the
 *  previous file stays; the next DONE saves again); engine_close() lets a
 *  save finish, so quitting keeps the latest state.  Files over
 *  kv_max_disk in total are removed least recently used first.
 *  Before prefilling, a request that names a session reads that state's
 *  token list; when it shares a longer prefix with the prompt than the
 *  cache does, the state is read into the cache (stats.restored_tokens)
 *  and prefix reuse does the rest.  A state that does not match (another
 *  model, format version, KV type or shape, a failed checksum, a truncated
 *  file) is ignored with a note in the log: the tokens are computed again.
 *  The state holds token ids, so a state is only ever used for the prefix
 *  it shares with the prompt, whatever its session.
 *
 * CONTEXT POLICY (engine_config.overflow)
 *  stop: a prompt that cannot fit with one more token is refused (ERROR);
 *    generation that fills the context ends with context_full.
 *  drop-oldest: whole turns (a user message and its replies) are dropped,
 *    oldest first, never a system message nor the last user message, until
 *    the prompt leaves room for an answer (max_tokens, at most a quarter of
 *    the context); stats.dropped_turns.  Then as stop.  Token requests
 *    have no turns: as stop.
 *  shift: when the cache is full during generation, keep the first keep
 *    tokens (plus BOS), discard half of the rest and re-rotate; stats.shifts.
 *    A prompt that does not fit with room for a reply (as drop-oldest
 *    leaves) is cut the same way: the first keep tokens stay, whole blocks
 *    of half the rest go from after them (one more stats.shifts).
 */

enum engine_overflow { ENGINE_OVERFLOW_STOP, ENGINE_OVERFLOW_DROP_OLDEST, ENGINE_OVERFLOW_SHIFT };
enum engine_backend { ENGINE_BACKEND_AUTO, ENGINE_BACKEND_CPU, ENGINE_BACKEND_CUDA };
enum engine_kv_type { ENGINE_KV_F16, ENGINE_KV_F32 };

struct engine_config {
	const char *model_path;
	int n_threads; /* 0 = online cores */
	int n_ctx;     /* 0 = the model's context length */
	/* largest prefill chunk, 0 = default; chunks are sized to take about
	 * 40 ms so that a cancel lands soon */
	int n_batch;
	enum engine_kv_type kv_type;
	enum engine_backend backend;
	const char *chat_template; /* "auto", a name, or a file path */
	enum engine_overflow overflow;
	int keep;                /* tokens kept at the start on a context shift, after BOS */
	int max_buffered_tokens; /* event queue bound, 0 = default */
	uint64_t memory_limit;   /* bytes, 0 = none */
	int memory_strict;       /* refuse (1) or warn (0) when over the limit */
	int mlock;               /* pin the weights in RAM; failing is a warning */
	int pre_fallback;        /* unknown tokenizer.ggml.pre: fall back to gpt-2 rules */
	int no_repack;           /* keep weights in the file's layout (model_params.repack) */
	/* folder of saved KV states; NULL or "" = none saved or read (a
	 * remote engine ignores it: the server holds its own cache) */
	const char *kv_dir;
	uint64_t kv_max_disk; /* bytes all states there may take; 0 = no cap */

	/* A remote server instead of model_path (engine/remote.c): the same
	 * events from an OpenAI-compatible chat-completions API.  "Loading" is
	 * asking the server for its models; conversations only (token
	 * requests are refused); the server applies the chat template, the
	 * context and the sampling, so the local-model fields above are
	 * unused. */
	const char *remote_url;     /* NULL = run model_path here */
	const char *remote_model;   /* NULL or "" = the first the server lists */
	const char *remote_api_key; /* the key itself, NULL = none; never shown */
	double remote_timeout;      /* seconds of silence from the server, 0 = none */
	int remote_retries;         /* tries again before the first text */
};

struct engine_sampling {
	float temperature;
	int top_k;
	float top_p;
	float min_p;
	float typical_p;
	float repeat_penalty;
	int repeat_last_n;
	float presence_penalty;
	float frequency_penalty;
	uint64_t seed;
};

enum engine_role { ENGINE_ROLE_SYSTEM, ENGINE_ROLE_USER, ENGINE_ROLE_ASSISTANT };

struct engine_message {
	enum engine_role role;
	const char *text;
};

#define ENGINE_MAX_STOP 16

enum engine_think {
	ENGINE_THINK_DEFAULT, /* as the template decides */
	ENGINE_THINK_ON,
	ENGINE_THINK_OFF,
};

/* How hard a model reasons, for templates that read it (harmony's
 * reasoning_effort: "Reasoning: low" in gpt-oss's system message). */
enum engine_effort {
	ENGINE_EFFORT_DEFAULT, /* as the template decides (gpt-oss: medium) */
	ENGINE_EFFORT_LOW,
	ENGINE_EFFORT_MEDIUM,
	ENGINE_EFFORT_HIGH,
};

struct engine_request {
	/* Either a conversation (rendered with the chat template) ... */
	const struct engine_message *messages;
	int n_messages;
	int add_generation_prompt; /* normally 1 */
	/* ... or raw token ids (messages == NULL). */
	const int32_t *tokens;
	int n_tokens;

	struct engine_sampling sampling;
	int max_tokens;  /* -1 = until the context is full, 0 = prefill only */
	double max_time; /* seconds, 0 = unlimited */
	/* the reply ends before any of them (a conversation also ends at its
	 * template's turn markers) */
	const char *stop[ENGINE_MAX_STOP];
	int n_stop;
	/* 1: ignore the cache and prefill the whole prompt (benchmarks) */
	int no_reuse;
	/* thinking, for templates that switch it (enable_thinking, as Qwen3's) */
	enum engine_think think;
	/* reasoning effort, for templates that read it (reasoning_effort) */
	enum engine_effort effort;
	/* the session the conversation belongs to: its saved state is read
	 * before and written after (see SAVED STATES); NULL or "" = none.
	 * Letters, digits, '-' and '_', shorter than ENGINE_SESSION_MAX. */
	const char *session;
};

#define ENGINE_SESSION_MAX 64

enum engine_stop_reason {
	ENGINE_STOP_NONE,
	ENGINE_STOP_EOS,
	ENGINE_STOP_MAX_TOKENS,
	ENGINE_STOP_STOP_STRING,
	ENGINE_STOP_CANCELLED,
	ENGINE_STOP_CONTEXT_FULL,
	ENGINE_STOP_ERROR,
	ENGINE_STOP_TIMEOUT,
};
const char *engine_stop_reason_name(enum engine_stop_reason r);

struct engine_stats {
	int prompt_tokens; /* tokens in the rendered prompt (after drop-oldest) */
	/* of those, kept from the KV cache (reuse rate = reused / prompt) */
	int reused_tokens;
	int dropped_turns;    /* drop-oldest: whole turns removed to fit */
	int shifts;           /* context shifts during generation */
	double prefill_ms;    /* prefill of the prompt_tokens - reused_tokens new ones */
	double prefill_tps;   /* those tokens per second */
	double ttft_ms;       /* engine_submit() to the first sampled token */
	int gen_tokens;       /* tokens generated (an end-of-turn token not counted) */
	int reasoning_tokens; /* of those, generated while thinking */
	double decode_ms;     /* from the end of prefill to the end of the reply */
	double decode_tps;    /* gen_tokens per second of decode_ms */
	int n_ctx_used;       /* tokens in the cache at the end */
	int n_ctx;            /* the context size */
	uint64_t peak_rss;    /* peak resident memory of the process, bytes */
	enum engine_stop_reason stop_reason;
	/* remote: prompt_tokens and gen_tokens are the server's usage figures
	 * (1), or gen_tokens counts the chunks that carried text (0); ttft,
	 * decode_ms and decode_tps are measured here, on the client */
	int server_usage;
	double server_decode_tps; /* remote: the server's own figure (llama-server), 0 = not sent */
	/* of reused_tokens, those read from the session's saved state */
	int restored_tokens;
	double restore_ms; /* reading (and checking) that state, part of ttft_ms */
};

enum engine_event_type {
	ENGINE_EV_LOAD_PROGRESS, /* done / total (bytes) */
	ENGINE_EV_READY,         /* the model is loaded; engine_info() is valid */
	/* done / total (tokens); stats holds what is known before the reply:
	 * prompt_tokens, reused_tokens, dropped_turns */
	ENGINE_EV_PREFILL_PROGRESS,
	ENGINE_EV_TOKEN, /* text: complete UTF-8, never part of a stop string */
	ENGINE_EV_DONE,  /* stats; text: the whole reply */
	ENGINE_EV_ERROR, /* text: the message (loading, or a request) */
	/* text: something to tell the user; work goes on (memory over a
	 * memory.mode=warn limit, an unknown pre-tokenizer); done 1: about the
	 * chat template (one that cannot be used, a built-in format instead) */
	ENGINE_EV_WARNING,
	/* after the DONE of a request naming a session: text = the session;
	 * path = the state file now holding the cache (done = its bytes, total
	 * = its tokens), or NULL when none was written (message: why; NULL
	 * when there was nothing to save or the next request stopped it) */
	ENGINE_EV_KV_SAVED,
};

struct engine_event {
	enum engine_event_type type;
	uint64_t done, total;
	char *text; /* owned by the event; freed by engine_event_free */
	size_t len;
	int reasoning; /* TOKEN: 1 when the text is thinking, not answer */
	struct engine_stats stats;
	/* DONE with stop reason error: what went wrong, else NULL (owned) */
	char *message;
	/* DONE: the reply's thinking (owned), or NULL when it did not think */
	char *reasoning_text;
	size_t reasoning_len;
	char *path; /* KV_SAVED: the state file (owned), or NULL */
};

struct engine_info {
	char name[128]; /* general.name or the file's base name */
	char arch[32];
	char type_name[32]; /* dominant weight type, e.g. "Q4_K" */
	uint64_t file_bytes;
	uint64_t n_params;
	int n_ctx; /* the context in use */
	int n_ctx_train;
	int n_vocab;
	int n_threads;
	char backend[16];       /* "cpu", "cuda" or "remote" */
	char device[160];       /* the GPU ("NVIDIA H100, 79.1 GiB"); "" on the CPU or a server */
	char chat_template[32]; /* the template in use; "none" for raw completion */
	int template_defaulted; /* 1 when no template was found and none was asked for */
	int template_thinks;    /* 1 when the template switches thinking (engine_request.think) */
	uint64_t kv_bytes;
	uint64_t weight_bytes; /* bytes of all tensors (mapped) */
	/* remote: the server (scheme://host:port/path, no credentials); "" for
	 * a local model.  name is the model's id there; n_ctx the context the
	 * server reports, 0 when it says none (ollama) */
	char server[160];
};

struct engine;

/* Returns at once; loading runs on the engine thread and reports
 * LOAD_PROGRESS then READY or ERROR.  NULL (with error()) only when the
 * thread cannot be started. */
/*
 * CPU kernels for the models this process loads: isa "auto" (each weight
 * type's fastest level, measured once per CPU at the first load and cached
 * in cache_dir, NULL or "" = not kept) or a level's name ("avx2",
 * "avx512-256", "avx512", "avx512-vnni", "scalar") for every type.  -1
 * (error()) for an unknown name or a level this CPU lacks.  Call before the
 * first model loads; without it every type runs the widest level.
 */
int engine_kernels_configure(const char *isa, const char *cache_dir);

struct engine *engine_open(const struct engine_config *cfg);
void engine_close(struct engine *e);

int engine_wakeup_fd(const struct engine *e);
/* 1 and an event (free with engine_event_free), or 0 when the queue is empty. */
int engine_next_event(struct engine *e, struct engine_event *ev);
void engine_event_free(struct engine_event *ev);

/* Queue a request; the engine copies everything it needs.  -1 (error())
 * when one is already running or the engine failed to load. */
int engine_submit(struct engine *e, const struct engine_request *req);
void engine_cancel(struct engine *e);
/* End the running reply's thinking now: the engine closes the block and
 * the model answers (a remote engine cancels instead).  Safe from any
 * thread; forgotten when the reply is not thinking. */
void engine_stop_thinking(struct engine *e);
/* NULL until READY. */
const struct engine_info *engine_info(const struct engine *e);

/* ---- saved KV states: the files in a kv_dir, for listings and clean-up ---- */

struct engine_kv_file {
	char session[ENGINE_SESSION_MAX]; /* from the file's name */
	char *path;                       /* owned */
	uint64_t bytes;
	int64_t used_ms; /* last written or read (the file's mtime), Unix ms */
	int tokens;      /* positions it holds; -1 when it is not a state we read */
	char model[64];  /* the model's name as saved */
};

/* The states in dir, most recently used first (*n = 0 when there is no
 * such folder).  Temporary files left by dead processes are removed on the
 * way.  0, or -1 with error(). */
int engine_kv_list(const char *dir, struct engine_kv_file **out, size_t *n);
void engine_kv_list_free(struct engine_kv_file *f, size_t n);
/* Remove the states of one session (NULL: all of them).  Files removed, or
 * -1 with error(). */
int engine_kv_remove(const char *dir, const char *session);
/* The models a remote server (cfg->remote_url) offers, asked from the
 * calling thread: 0 and a malloc'd array (engine_models_free), or -1 with
 * error(). */
struct engine_model_entry {
	char *id;
	char *owner; /* NULL when the server does not say */
	int n_ctx;   /* 0 = not reported */
};
int engine_list_models(const struct engine_config *cfg, struct engine_model_entry **out, int *n);
void engine_models_free(struct engine_model_entry *m, int n);

#endif
