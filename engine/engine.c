/* The engine service: a background thread owning the model; requests in, events out. */
#include "engine.h"

#include "gguf.h"
#include "kv_cache.h"
#include "kv_dir.h"
#include "kv_state.h"
#include "log.h"
#include "model.h"
#include "prompt.h"
#include "quant_select.h"
#include "reasoning.h"
#include "remote.h"
#include "report.h"
#include "sampler.h"
#include "strbuf.h"
#include "tokenizer.h"
#include "util.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * DESIGN
 * One engine = one worker thread that owns the model, the tokenizer, the
 * sampler and the KV cache.  The owner (UI or batch thread) talks to it
 * through two things guarded by one mutex:
 *  - a request slot (at most one request pending or running: `busy`), and
 *  - a ring of events, bounded: progress and token events use `cap` slots,
 *    and a few more slots are reserved for READY / WARNING / DONE / ERROR so
 *    that a full queue can never keep a request from ending.
 * Every push writes one byte to a non-blocking pipe and the pop that empties
 * the ring drains it, both under the mutex, so the pipe is readable exactly
 * while events wait.  When the ring is full the engine waits on a condition
 * variable (timed, because a signal handler's engine_cancel() cannot signal
 * it) and never grows the ring; a progress event instead updates the last
 * one queued (or is dropped), so the final figure is not lost.
 *
 * Two atomic flags stop work: `cancel` (the current request; cleared by
 * engine_submit) and `stop` (engine_close; also handed to the model so that
 * loading and long forward passes end early).
 *
 * The KV cache keeps the tokens it holds (model_kv_tokens), so each request
 * starts with the longest common prefix of that and its prompt and prefills
 * only the rest.
 *
 * With cfg.remote_url the same thread, ring and flags serve a remote
 * server instead (engine/remote.c): loading asks it for its models, and a
 * request streams a chat completion whose text goes through the same stop
 * string scan and TOKEN events.  The UI and the history cannot tell.
 *
 * Saved states (kv_dir.c, kv_state.c) extend that reuse across processes.
 * They are read and written on the engine thread, between requests, so
 * the cache never changes under a save; a save checks for a waiting
 * request every MiB and gives way to it.  The engine remembers which file
 * matches the cache (saved_*), so that a DONE that changed nothing (a
 * request refused by the context policy, a cancel before the first chunk)
 * writes nothing.
 */

#define QUEUE_DEFAULT 256
#define QUEUE_MAX (1 << 20)
#define QUEUE_RESERVE 4
#define WAIT_SLICE_MS 20 /* how often a blocked push looks at the flags */
/* A prefill chunk is sized to take about this long (measured on the chunks
 * before), so that a cancel lands soon even on a slow machine; at least
 * CHUNK_MIN tokens so that the matrix kernels keep most of their speed. */
#define CHUNK_TARGET_MS 40.0
#define CHUNK_MIN 4
#define CHUNK_START 16

/* A copied request, as the engine thread runs it. */
struct job {
	struct engine_message *msgs; /* (n_msgs) texts owned */
	int n_msgs;
	int add_generation_prompt;
	int32_t *tokens; /* (n_tokens) raw ids, or NULL */
	int n_tokens;
	struct engine_sampling sampling;
	int max_tokens;
	double max_time;
	char *stop[ENGINE_MAX_STOP];
	int n_stop;
	int no_reuse;
	enum engine_think think;
	enum engine_effort effort;
	char *session;   /* NULL = none */
	double t_submit; /* time_now_ms() at engine_submit */
};

struct engine {
	/* set by engine_open, read-only afterwards */
	struct engine_config cfg; /* strings below are our copies */
	char *model_path;
	char *chat_template;
	char *kv_dir;  /* saved states, NULL = off */
	int chunk_max; /* the model's n_batch */
	int pipe_r, pipe_w;
	pthread_t thread;
	struct remote *remote; /* cfg.remote_url: a server instead of a model */

	/* guarded by mu */
	pthread_mutex_t mu;
	pthread_cond_t cv_work;    /* a job arrived or close */
	pthread_cond_t cv_space;   /* the owner popped an event */
	struct engine_event *ring; /* (cap + QUEUE_RESERVE) slots */
	int cap, head, n;
	struct job *job; /* submitted, not yet taken */
	int busy;        /* a job is pending or running */
	int failed;      /* loading failed: submits are refused */
	int closing;

	atomic_int cancel;        /* the current request */
	atomic_int stop_thinking; /* the current request: close its thinking block */
	atomic_int stop;          /* engine_close */
	atomic_int ready;         /* info is valid */
	struct engine_info info;

	/* engine thread only */
	struct model *m;
	struct tokenizer *tok;
	struct prompt_template *tmpl;
	float *logits; /* (n_vocab) */
	int chunk;     /* prefill tokens between cancel checks, adapted to CHUNK_TARGET_MS */
	uint64_t last_progress;
	struct kv_state_id kv_id; /* the model, for saved states */
	uint64_t kv_key;          /* names its files: identity, KV type, shape */
	/* the state file whose contents equal the cache (saved or read last),
	 * or saved_session NULL: none known */
	char *saved_session;
	char *saved_path;
	int32_t *saved_tokens; /* (n_saved) */
	int n_saved;
	uint64_t saved_bytes;
	int save_stopped; /* the last save gave way to a waiting request */
};

const char *engine_stop_reason_name(enum engine_stop_reason r)
{
	static const char *const names[] = { "none",        "eos",       "max_tokens",
					     "stop_string", "cancelled", "context_full",
					     "error",       "timeout" };
	if ((unsigned)r < sizeof(names) / sizeof(names[0]))
		return names[r];
	return "unknown";
}

/* ---- the event ring ---------------------------------------------------------------- */

enum push_mode {
	PUSH_DROP,  /* progress: when the ring is full, update the last progress queued */
	PUSH_BLOCK, /* tokens: wait for room unless cancelled or closing */
	PUSH_FINAL, /* ready, done, error, warning: may use the reserve */
};

static void wake_owner(struct engine *e)
{
	char c = 1;
	/* EAGAIN (the pipe is full) is fine: the owner has bytes to read already */
	while (write(e->pipe_w, &c, 1) < 0 && errno == EINTR)
		;
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(cv, mu, &ts);
}

/* Queue ev (its text is handed over).  0, or -1 when it was dropped (freed). */
static int push(struct engine *e, struct engine_event *ev, enum push_mode mode)
{
	pthread_mutex_lock(&e->mu);
	for (;;) {
		int limit = mode == PUSH_FINAL ? e->cap + QUEUE_RESERVE : e->cap;
		if (e->n < limit)
			break;
		if (mode == PUSH_DROP && e->n) {
			/* progress: the newest figure replaces the last one queued
			 * if that is progress too, else it is dropped */
			int slots = e->cap + QUEUE_RESERVE;
			struct engine_event *tail = &e->ring[(e->head + e->n - 1) % slots];
			if (tail->type == ev->type) {
				tail->done = ev->done;
				tail->total = ev->total;
			}
			pthread_mutex_unlock(&e->mu);
			engine_event_free(ev);
			return -1;
		}
		if (mode == PUSH_DROP || atomic_load(&e->stop) ||
		    (mode == PUSH_BLOCK && atomic_load(&e->cancel))) {
			pthread_mutex_unlock(&e->mu);
			engine_event_free(ev);
			return -1;
		}
		timed_wait(&e->cv_space, &e->mu, WAIT_SLICE_MS);
	}
	int slots = e->cap + QUEUE_RESERVE;
	e->ring[(e->head + e->n) % slots] = *ev;
	e->n++;
	/* the request ends when its last event is queued, so the owner may
	 * submit the next one as soon as it reads it */
	if (ev->type == ENGINE_EV_DONE || ev->type == ENGINE_EV_ERROR)
		e->busy = 0;
	wake_owner(e);
	pthread_mutex_unlock(&e->mu);
	return 0;
}

static void push_simple(struct engine *e, enum engine_event_type type, uint64_t done,
			uint64_t total, enum push_mode mode)
{
	struct engine_event ev = { 0 };
	ev.type = type;
	ev.done = done;
	ev.total = total;
	push(e, &ev, mode);
}

static void push_text(struct engine *e, enum engine_event_type type, const char *text)
{
	struct engine_event ev = { 0 };
	ev.type = type;
	ev.len = strlen(text);
	ev.text = xstrdup(text);
	push(e, &ev, PUSH_FINAL);
}

/* A WARNING about the chat template (a built-in format renders instead). */
static void push_template_warning(struct engine *e, const char *text)
{
	struct engine_event ev = { 0 };
	ev.type = ENGINE_EV_WARNING;
	ev.len = strlen(text);
	ev.text = xstrdup(text);
	ev.done = 1;
	push(e, &ev, PUSH_FINAL);
}

int engine_next_event(struct engine *e, struct engine_event *ev)
{
	int got = 0;
	pthread_mutex_lock(&e->mu);
	if (e->n) {
		*ev = e->ring[e->head];
		e->head = (e->head + 1) % (e->cap + QUEUE_RESERVE);
		e->n--;
		got = 1;
		pthread_cond_signal(&e->cv_space);
	}
	if (!e->n) {
		char buf[256];
		while (read(e->pipe_r, buf, sizeof(buf)) > 0)
			;
	}
	pthread_mutex_unlock(&e->mu);
	return got;
}

void engine_event_free(struct engine_event *ev)
{
	if (!ev)
		return;
	free(ev->text);
	free(ev->message);
	free(ev->reasoning_text);
	free(ev->path);
	ev->text = NULL;
	ev->message = NULL;
	ev->reasoning_text = NULL;
	ev->reasoning_len = 0;
	ev->path = NULL;
	ev->len = 0;
}

int engine_wakeup_fd(const struct engine *e)
{
	return e->pipe_r;
}

const struct engine_info *engine_info(const struct engine *e)
{
	return atomic_load(&e->ready) ? &e->info : NULL;
}

/* ---- loading ------------------------------------------------------------------------ */

static void load_progress(void *ud, uint64_t done, uint64_t total)
{
	struct engine *e = ud;
	/* at most ~100 events per load */
	if (done != total && total && done - e->last_progress < total / 100)
		return;
	e->last_progress = done;
	push_simple(e, ENGINE_EV_LOAD_PROGRESS, done, total, PUSH_DROP);
}

/*
 * Memory needed before loading: the weights (mapped, counted in full since
 * every token reads them all), the KV cache and the scratch buffers.  Over
 * cfg.memory_limit: -1 (strict) or a warning in *warn.
 */
static int memory_check(struct engine *e, struct strbuf *warn)
{
	struct model_params mp;
	struct model_memory mm;
	uint64_t weights, kv, scratch, total;

	if (!e->cfg.memory_limit)
		return 0;
	model_params_default(&mp);
	mp.n_ctx = e->cfg.n_ctx;
	mp.n_batch = e->cfg.n_batch;
	mp.kv_type = e->cfg.kv_type == ENGINE_KV_F32 ? KV_F32 : KV_F16;
	mp.backend = e->cfg.backend == ENGINE_BACKEND_CPU    ? MODEL_BACKEND_CPU
		     : e->cfg.backend == ENGINE_BACKEND_CUDA ? MODEL_BACKEND_CUDA
							     : MODEL_BACKEND_AUTO;
	mp.cancel = &e->stop;
	if (model_memory_estimate(e->model_path, &mp, &mm) < 0)
		return -1;
	weights = mm.weights;
	kv = mm.kv;
	scratch = mm.scratch;
	total = weights + kv + scratch;
	if (total <= e->cfg.memory_limit)
		return 0;

	char a[32], b[32], c[32], d[32], l[32];
	struct strbuf msg = STRBUF_INIT;
	strbuf_addf(&msg,
		    "'%s' needs %s (weights %s, KV cache %s, scratch %s), over the memory limit "
		    "of %s",
		    e->model_path, format_size(a, sizeof(a), total),
		    format_size(b, sizeof(b), weights), format_size(c, sizeof(c), kv),
		    format_size(d, sizeof(d), scratch),
		    format_size(l, sizeof(l), e->cfg.memory_limit));
	if (e->cfg.memory_strict) {
		error("%s; use a smaller context or memory.mode: warn", msg.buf);
		strbuf_release(&msg);
		return -1;
	}
	strbuf_addstr(warn, msg.buf);
	strbuf_release(&msg);
	return 0;
}

/* A remote server: its models instead of a file's tensors. */
static int remote_load(struct engine *e)
{
	struct strbuf warn = STRBUF_INIT;
	struct engine_info info;
	if (remote_connect(e->remote, &info, &warn) < 0) {
		strbuf_release(&warn);
		return -1;
	}
	if (warn.len) {
		struct engine_event ev = { 0 };
		ev.type = ENGINE_EV_WARNING;
		ev.text = strbuf_detach(&warn, &ev.len);
		push(e, &ev, PUSH_FINAL);
	}
	strbuf_release(&warn);
	e->info = info;
	return 0;
}

static int engine_load(struct engine *e)
{
	struct model_params mp;
	struct strbuf warn = STRBUF_INIT;

	if (e->remote)
		return remote_load(e);

	if (memory_check(e, &warn) < 0)
		return -1;
	if (warn.len) {
		struct engine_event ev = { 0 };
		ev.type = ENGINE_EV_WARNING;
		ev.text = strbuf_detach(&warn, &ev.len);
		push(e, &ev, PUSH_FINAL);
	}
	model_params_default(&mp);
	mp.n_ctx = e->cfg.n_ctx;
	mp.n_threads = e->cfg.n_threads;
	mp.n_batch = e->cfg.n_batch;
	mp.kv_type = e->cfg.kv_type == ENGINE_KV_F32 ? KV_F32 : KV_F16;
	mp.backend = e->cfg.backend == ENGINE_BACKEND_CPU    ? MODEL_BACKEND_CPU
		     : e->cfg.backend == ENGINE_BACKEND_CUDA ? MODEL_BACKEND_CUDA
							     : MODEL_BACKEND_AUTO;
	/* read every weight page now: the load progress is real, a close
	 * during it is seen per tensor, and the first reply does not pay for
	 * page faults */
	mp.prefault = 1;
	mp.mlock = e->cfg.mlock;
	mp.repack = !e->cfg.no_repack;
	mp.progress = load_progress;
	mp.progress_ud = e;
	mp.cancel = &e->stop;
	e->m = model_load(e->model_path, &mp);
	if (!e->m)
		return -1;
	if (model_warning(e->m)) {
		struct engine_event ev = { 0 };
		ev.type = ENGINE_EV_WARNING;
		ev.text = xstrdup(model_warning(e->m));
		ev.len = strlen(ev.text);
		push(e, &ev, PUSH_FINAL);
	}
	const struct model_info *mi = model_info(e->m);
	e->tok = tokenizer_open_cancellable(model_gguf(e->m), e->cfg.pre_fallback, &e->stop);
	if (!e->tok)
		return -1; /* the message names the file */
	if (tokenizer_n_vocab(e->tok) != mi->n_vocab)
		return error("'%s': the vocabulary has %d tokens but the output layer %d",
			     e->model_path, (int)tokenizer_n_vocab(e->tok), mi->n_vocab);
	if (tokenizer_pre_fell_back(e->tok)) {
		struct strbuf w = STRBUF_INIT;
		strbuf_addf(&w, "'%s': unknown pre-tokenizer '%s', using the gpt-2 rules",
			    e->model_path, tokenizer_pre_name(e->tok));
		struct engine_event ev = { 0 };
		ev.type = ENGINE_EV_WARNING;
		ev.text = strbuf_detach(&w, &ev.len);
		push(e, &ev, PUSH_FINAL);
	}
	e->tmpl = prompt_template_open(model_gguf(e->m), e->tok, e->chat_template);
	if (!e->tmpl)
		return -1;
	if (prompt_template_note(e->tmpl))
		push_template_warning(e, prompt_template_note(e->tmpl));
	e->logits = try_alloc_array((size_t)mi->n_vocab, sizeof(float));
	if (!e->logits)
		return error("out of memory for the logits");
	e->chunk_max = mi->n_batch;
	e->chunk = CHUNK_START < e->chunk_max ? CHUNK_START : e->chunk_max;

	struct engine_info *in = &e->info;
	snprintf(in->name, sizeof(in->name), "%s", mi->name);
	snprintf(in->arch, sizeof(in->arch), "%s", mi->arch);
	snprintf(in->type_name, sizeof(in->type_name), "%s", mi->type_name);
	in->file_bytes = mi->file_bytes;
	in->n_params = mi->n_params;
	in->n_ctx = mi->n_ctx;
	in->n_ctx_train = mi->n_ctx_train;
	in->n_vocab = mi->n_vocab;
	in->n_threads = mi->n_threads;
	snprintf(in->backend, sizeof(in->backend), "%s", mi->backend);
	snprintf(in->device, sizeof(in->device), "%s", mi->device);
	snprintf(in->chat_template, sizeof(in->chat_template), "%s", prompt_template_name(e->tmpl));
	in->template_defaulted = prompt_template_defaulted(e->tmpl);
	in->template_thinks = prompt_template_thinks(e->tmpl);
	in->kv_bytes = mi->kv_bytes;
	in->weight_bytes = mi->weight_bytes;

	/* saved states are the CPU cache's bytes (kv_state.c); a device's
	 * cache has no host copy to write or to read into */
	if (e->kv_dir && !model_kv(e->m)->k) {
		log_info("kv states off: the KV cache is on the %s backend's device", mi->backend);
		free(e->kv_dir);
		e->kv_dir = NULL;
		e->cfg.kv_dir = NULL;
	}
	if (e->kv_dir) {
		const struct gguf *g = model_gguf(e->m);
		e->kv_id.model_bytes = gguf_file_size(g);
		e->kv_id.model_hash = gguf_header_hash(g);
		/* cut at a character boundary: listings print it */
		size_t nl = strlen(mi->name);
		if (nl >= sizeof(e->kv_id.model_name))
			nl = sizeof(e->kv_id.model_name) - 1;
		while (nl && ((unsigned char)mi->name[nl] & 0xC0) == 0x80)
			nl--;
		memcpy(e->kv_id.model_name, mi->name, nl);
		e->kv_id.model_name[nl] = '\0';
		e->kv_key = kv_state_key(model_kv(e->m), &e->kv_id);
	}
	return 0;
}

/* ---- one request ----------------------------------------------------------------------- */

/* Everything one request accumulates while it runs. */
struct run {
	struct job *job;
	struct engine *e;
	struct engine_stats st;
	struct strbuf reply; /* the reply so far, markers included (never a stop string) */
	size_t emitted;      /* bytes of reply passed to the splitter */
	/* what the reply's bytes are: its thinking, and the answer (DONE's text) */
	struct reasoning_split split;
	struct strbuf answer, thought;
	struct tokenizer_decoder *dec;
	struct sampler *smp;
	double t_start;  /* the engine took the request */
	double t_decode; /* decode started */
	char *fail;      /* DONE(error) message */
	int done;        /* DONE was pushed */
};

static int timed_out(const struct run *r)
{
	return r->job->max_time > 0 && time_now_ms() - r->t_start > r->job->max_time * 1000.0;
}

/* Longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t stop_hold(const struct job *j, const char *s, size_t n)
{
	size_t best = 0;
	for (int i = 0; i < j->n_stop; i++) {
		size_t sl = strlen(j->stop[i]);
		size_t k = sl - 1 < n ? sl - 1 : n;
		for (; k > best; k--)
			if (!memcmp(s + n - k, j->stop[i], k)) {
				best = k;
				break;
			}
	}
	return best;
}

/* Send reply[emitted .. upto) as a TOKEN event. */
/* A part of the reply the splitter decided on: a TOKEN event. */
static void emit_part(void *ud, enum reasoning_part part, const char *text, size_t len)
{
	struct run *r = ud;
	strbuf_add(part == REASONING_THOUGHT ? &r->thought : &r->answer, text, len);
	struct engine_event ev = { 0 };
	ev.type = ENGINE_EV_TOKEN;
	ev.len = len;
	ev.text = xstrndup(text, len);
	ev.reasoning = part == REASONING_THOUGHT;
	ev.done = (uint64_t)r->st.gen_tokens;
	ev.total = r->job->max_tokens > 0 ? (uint64_t)r->job->max_tokens : 0;
	push(r->e, &ev, PUSH_BLOCK);
}

/* Send reply[emitted .. upto) on, through the reasoning splitter. */
static void emit(struct engine *e, struct run *r, size_t upto)
{
	(void)e;
	if (upto <= r->emitted)
		return;
	reasoning_feed(&r->split, r->reply.buf + r->emitted, upto - r->emitted);
	r->emitted = upto;
}

/*
 * New text was appended to the reply: end it at a stop string (1), or send
 * what cannot be the start of one (0).
 */
static int scan_stop(struct engine *e, struct run *r, size_t old_len)
{
	const struct job *j = r->job;
	size_t from = r->emitted < old_len ? r->emitted : old_len;
	size_t cut = (size_t)-1;
	for (int i = 0; i < j->n_stop; i++) {
		size_t sl = strlen(j->stop[i]);
		/* a match must end in the new text; start far enough back */
		size_t start = old_len >= sl ? old_len - sl + 1 : 0;
		if (start < from)
			start = from;
		const char *p = r->reply.buf + start;
		while ((p = memmem(p, r->reply.len - (size_t)(p - r->reply.buf), j->stop[i], sl)) !=
		       NULL) {
			size_t at = (size_t)(p - r->reply.buf);
			if (at < cut)
				cut = at;
			break;
		}
	}
	if (cut != (size_t)-1) {
		strbuf_setlen(&r->reply, cut);
		emit(e, r, cut);
		return 1;
	}
	emit(e, r,
	     r->reply.len - stop_hold(j, r->reply.buf + r->emitted, r->reply.len - r->emitted));
	return 0;
}

static void finish(struct engine *e, struct run *r, enum engine_stop_reason why)
{
	if (why != ENGINE_STOP_STOP_STRING) {
		/* what was held back as a possible stop string start is text */
		if (r->dec)
			tokenizer_decoder_flush(r->dec, &r->reply);
		emit(e, r, r->reply.len);
	}
	reasoning_flush(&r->split);
	double now = time_now_ms();
	r->st.stop_reason = why;
	if (r->t_decode > 0) {
		r->st.decode_ms = now - r->t_decode;
		if (r->st.decode_ms > 0)
			r->st.decode_tps = r->st.gen_tokens * 1000.0 / r->st.decode_ms;
	}
	if (e->m)
		r->st.n_ctx_used = model_n_past(e->m);
	r->st.n_ctx = e->info.n_ctx;
	r->st.peak_rss = rss_peak();
	struct engine_event ev = { 0 };
	ev.type = ENGINE_EV_DONE;
	ev.stats = r->st;
	ev.text = strbuf_detach(&r->answer, &ev.len);
	strbuf_rtrim(&r->thought);
	if (r->thought.len)
		ev.reasoning_text = strbuf_detach(&r->thought, &ev.reasoning_len);
	ev.message = r->fail;
	r->fail = NULL;
	ev.done = (uint64_t)r->st.gen_tokens;
	push(e, &ev, PUSH_FINAL);
	r->done = 1;
}

/* ---- saved states ------------------------------------------------------------------ */

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
	int i = 0;
	while (i < na && i < nb && a[i] == b[i])
		i++;
	return i;
}

static void forget_saved(struct engine *e)
{
	free(e->saved_session);
	free(e->saved_path);
	free(e->saved_tokens);
	e->saved_session = e->saved_path = NULL;
	e->saved_tokens = NULL;
	e->n_saved = 0;
}

/* The cache now equals the file at path (just written or read). */
static void remember_saved(struct engine *e, const char *session, const char *path, uint64_t bytes)
{
	const struct kv_cache *kv = model_kv(e->m);
	int32_t *t = try_alloc_array((size_t)kv->n, sizeof(int32_t));
	forget_saved(e);
	if (!t)
		return; /* not remembered: the next save merely rewrites it */
	memcpy(t, kv->tokens, (size_t)kv->n * sizeof(int32_t));
	e->saved_session = xstrdup(session);
	e->saved_path = xstrdup(path);
	e->saved_tokens = t;
	e->n_saved = kv->n;
	e->saved_bytes = bytes;
}

/* Does the session's file on disk hold exactly what the cache holds? */
static int saved_matches(struct engine *e, const char *session)
{
	const struct kv_cache *kv = model_kv(e->m);
	struct stat st;
	return e->saved_session && !strcmp(e->saved_session, session) && e->n_saved == kv->n &&
	       !memcmp(e->saved_tokens, kv->tokens, (size_t)kv->n * sizeof(int32_t)) &&
	       stat(e->saved_path, &st) == 0 && (uint64_t)st.st_size == e->saved_bytes;
}

/*
 * Before the prefix reuse: read the session's state into the cache when it
 * shares more of the prompt than the cache does.  Every failure leaves a
 * consistent cache (untouched, or empty when the data failed its check)
 * and a note in the log; the prefill then computes what is missing.
 */
static void restore(struct engine *e, struct run *r, const int32_t *prompt, int n_prompt)
{
	struct strbuf path = STRBUF_INIT;
	struct kv_cache *kv = model_kv_writable(e->m);
	double t0 = time_now_ms();

	kv_dir_file(&path, e->kv_dir, r->job->session, e->kv_key);
	if (access(path.buf, F_OK) < 0) {
		log_debug("no kv state '%s'", path.buf);
		strbuf_release(&path);
		return;
	}
	struct kv_state_file *f = kv_state_open(path.buf, kv, &e->kv_id);
	if (!f) {
		log_info("kv state '%s' ignored: %s", path.buf, error_message());
		error_clear();
		strbuf_release(&path);
		return;
	}
	int have = common_prefix(kv->tokens, kv->n, prompt, n_prompt);
	int could = common_prefix(kv_state_tokens(f), kv_state_n_tokens(f), prompt, n_prompt);
	if (could <= have) {
		log_debug("kv state '%s' not read: it shares %d tokens with the prompt, the "
			  "cache %d",
			  path.buf, could, have);
	} else if (kv_state_read(f, kv) < 0) {
		log_info("kv state '%s' ignored: %s", path.buf, error_message());
		error_clear();
		forget_saved(e);
	} else {
		struct stat st;
		r->st.restored_tokens = kv->n;
		r->st.restore_ms = time_now_ms() - t0;
		remember_saved(e, r->job->session, path.buf,
			       stat(path.buf, &st) == 0 ? (uint64_t)st.st_size : 0);
		kv_dir_touch(path.buf);
		log_info("kv state '%s' read: %d tokens in %.1f ms", path.buf, kv->n,
			 r->st.restore_ms);
	}
	kv_state_close(f);
	strbuf_release(&path);
}

/* The save's stop test: a request is waiting (but engine_close lets it finish). */
static int save_should_stop(void *ud)
{
	struct engine *e = ud;
	pthread_mutex_lock(&e->mu);
	int stop = e->job != NULL && !e->closing;
	pthread_mutex_unlock(&e->mu);
	if (stop)
		e->save_stopped = 1;
	return stop;
}

/* After DONE: write the cache as the session's state, then KV_SAVED. */
static void save_state(struct engine *e, const struct job *j)
{
	const struct kv_cache *kv = model_kv(e->m);
	struct engine_event ev = { 0 };
	ev.type = ENGINE_EV_KV_SAVED;
	ev.text = xstrdup(j->session);
	ev.len = strlen(ev.text);
	if (kv->n > 0 && saved_matches(e, j->session)) {
		ev.path = xstrdup(e->saved_path);
		ev.done = e->saved_bytes;
		ev.total = (uint64_t)kv->n;
	} else if (kv->n > 0) {
		struct strbuf path = STRBUF_INIT;
		uint64_t bytes = 0;
		double t0 = time_now_ms();
		e->save_stopped = 0;
		if (kv_dir_save(e->kv_dir, j->session, e->kv_key, kv, &e->kv_id, e->cfg.kv_max_disk,
				save_should_stop, e, &path, &bytes) < 0) {
			/* a file written before, if any, is untouched: saved_* stays true */
			if (e->save_stopped) {
				log_debug("kv state '%s' not saved: a request is waiting",
					  path.buf);
			} else {
				log_warn("cannot save the kv state: %s", error_message());
				ev.message = xstrdup(error_message());
			}
			error_clear();
		} else {
			char sz[32];
			log_info("kv state '%s' saved: %d tokens, %s in %.0f ms", path.buf, kv->n,
				 format_size(sz, sizeof(sz), bytes), time_now_ms() - t0);
			remember_saved(e, j->session, path.buf, bytes);
			ev.path = xstrdup(path.buf);
			ev.done = bytes;
			ev.total = (uint64_t)kv->n;
		}
		strbuf_release(&path);
	}
	push(e, &ev, PUSH_FINAL);
}

/* Room the drop-oldest policy leaves for the reply. */
static int answer_room(const struct engine *e, const struct job *j)
{
	int n_ctx = e->info.n_ctx;
	int room = n_ctx / 4;
	if (j->max_tokens > 0 && j->max_tokens < room)
		room = j->max_tokens;
	return room < 1 ? 1 : room;
}

/*
 * Index of the first message of the oldest droppable turn (a user message
 * and the replies after it), never a system message nor the last user turn;
 * *len gets its message count (messages already marked gone are passed
 * over).  -1 when nothing can go.
 */
static int oldest_turn_skipping(const struct engine_message *m, int n, const unsigned char *gone,
				int *len)
{
	int first = -1, last_user = -1;
	for (int i = 0; i < n; i++)
		if (!gone[i] && m[i].role == ENGINE_ROLE_USER)
			last_user = i;
	for (int i = 0; i < n; i++)
		if (!gone[i] && m[i].role != ENGINE_ROLE_SYSTEM) {
			first = i;
			break;
		}
	if (first < 0 || first >= last_user)
		return -1;
	int k = first + 1;
	while (k < last_user && (gone[k] || m[k].role != ENGINE_ROLE_USER))
		k++;
	*len = k - first;
	return first;
}

/* What the template's reasoning_effort is told (NULL: its default). */
static const char *const effort_names[] = { NULL, "low", "medium", "high" };

/* A droppable turn: its first message and how many. */
struct span {
	int at, len;
};

/* Render msgs[0..n) as the job asks (generation prompt, thinking); a note
 * from the template (its Jinja failed, its format rendered) becomes a
 * warning, once. */
static int render(struct engine *e, const struct job *j, const struct engine_message *msgs, int n,
		  int32_t **out, int *n_out, int *thinking)
{
	struct prompt_opts po = { j->add_generation_prompt,
				  j->think == ENGINE_THINK_ON    ? 1
				  : j->think == ENGINE_THINK_OFF ? 0
								 : -1,
				  NULL, effort_names[j->effort] };
	char *note = NULL;
	int rc = prompt_render(e->tmpl, msgs, n, &po, out, n_out, thinking, &note);
	if (note) {
		push_template_warning(e, note);
		free(note);
	}
	return rc;
}

/* 1 when the conversation without all but the newest `kept` of the n
 * droppable turns fits with room for a reply, 0 when not, -1 on error. */
static int keeps_fit(struct engine *e, struct run *r, const struct span *span, int n, int kept,
		     unsigned char *gone, struct engine_message *tmp)
{
	struct job *j = r->job;
	int m = 0, len, *ids, thinking;
	memset(gone, 0, (size_t)j->n_msgs);
	for (int t = 0; t < n - kept; t++)
		memset(gone + span[t].at, 1, (size_t)span[t].len);
	for (int i = 0; i < j->n_msgs; i++)
		if (!gone[i])
			tmp[m++] = j->msgs[i];
	if (render(e, j, tmp, m, &ids, &len, &thinking) < 0)
		return -1;
	free(ids);
	return len + answer_room(e, j) <= e->info.n_ctx;
}

/*
 * shift: a prompt too long for the context loses tokens as the cache would
 * have in a shift: the first keep (plus BOS) stay, and whole blocks of half
 * the rest go from just after them, oldest first, until the reply has the
 * room drop-oldest leaves (llama.cpp's server cuts prompts this way).
 * Without it every turn after the context filled was refused.
 */
static void shift_prompt(struct engine *e, struct run *r, int32_t *p, int *n)
{
	int n_ctx = e->info.n_ctx, target = n_ctx - answer_room(e, r->job);
	if (e->cfg.overflow != ENGINE_OVERFLOW_SHIFT || *n + answer_room(e, r->job) <= n_ctx ||
	    target < 2)
		return;
	int keep = e->cfg.keep + (tokenizer_add_bos(e->tok) ? 1 : 0);
	if (keep > target / 2)
		keep = target / 2;
	int block = (target - keep) / 2 > 0 ? (target - keep) / 2 : 1;
	int erase = (*n - target + block - 1) / block * block;
	if (erase > *n - keep - 1)
		erase = *n - keep - 1;
	if (erase <= 0)
		return;
	memmove(p + keep, p + keep + erase, sizeof(*p) * (size_t)(*n - keep - erase));
	*n -= erase;
	r->st.shifts++;
}

/* The prompt's token ids into *out (malloc'd), applying drop-oldest or
 * shift; *thinking as prompt_render() says. */
static int build_prompt(struct engine *e, struct run *r, int32_t **out, int *n_out, int *thinking)
{
	struct job *j = r->job;
	*thinking = 0;
	if (!j->msgs) {
		*out = try_alloc_array((size_t)(j->n_tokens ? j->n_tokens : 1), sizeof(int32_t));
		if (!*out)
			return error("out of memory for a prompt of %d tokens", j->n_tokens);
		memcpy(*out, j->tokens, sizeof(int32_t) * (size_t)j->n_tokens);
		*n_out = j->n_tokens;
		shift_prompt(e, r, *out, n_out);
		return 0;
	}
	if (render(e, j, j->msgs, j->n_msgs, out, n_out, thinking) < 0)
		return -1;
	shift_prompt(e, r, *out, n_out);
	if (e->cfg.overflow != ENGINE_OVERFLOW_DROP_OLDEST ||
	    *n_out + answer_room(e, j) <= e->info.n_ctx)
		return 0;

	/*
	 * drop-oldest: turns go oldest first, as oldest_turn_skipping() picks them one
	 * after the other (span[t] is the t-th: its first message and count).
	 * Rendering the conversation again after each turn dropped made a
	 * batch of 300 turns take half a minute; instead the most turns that
	 * can be kept are found by rendering only candidates: 1, 2, 4, ...
	 * kept turns (small prompts, cheap), then bisection.
	 */
	int n_spans = 0, len;
	struct span *span = xmalloc(sizeof(*span) * (size_t)(j->n_msgs + 1));
	unsigned char *gone = xcalloc((size_t)j->n_msgs + 1, 1);
	struct engine_message *tmp = xmalloc(sizeof(*tmp) * (size_t)(j->n_msgs + 1));
	for (int at; (at = oldest_turn_skipping(j->msgs, j->n_msgs, gone, &len)) >= 0;) {
		span[n_spans++] = (struct span){ at, len };
		memset(gone + at, 1, (size_t)len);
	}
	/* the most turns that can be kept: keeping them all does not fit */
	int good = 0, bad = n_spans, rc = 0, f;
	for (int kept = 1; kept < bad; kept *= 2) {
		if ((f = keeps_fit(e, r, span, n_spans, kept, gone, tmp)) < 0)
			rc = -1;
		if (f <= 0) {
			if (f == 0)
				bad = kept;
			break;
		}
		good = kept;
	}
	while (rc == 0 && bad - good > 1) {
		int mid = good + (bad - good) / 2;
		if ((f = keeps_fit(e, r, span, n_spans, mid, gone, tmp)) < 0)
			rc = -1;
		else if (f)
			good = mid;
		else
			bad = mid;
	}
	if (rc == 0) {
		int drop = n_spans - good, n = 0;
		memset(gone, 0, (size_t)j->n_msgs);
		for (int t = 0; t < drop; t++)
			memset(gone + span[t].at, 1, (size_t)span[t].len);
		for (int i = 0; i < j->n_msgs; i++) {
			if (gone[i])
				free((char *)j->msgs[i].text);
			else
				j->msgs[n++] = j->msgs[i];
		}
		j->n_msgs = n;
		r->st.dropped_turns += drop;
		free(*out);
		*out = NULL;
		rc = render(e, j, j->msgs, j->n_msgs, out, n_out, thinking);
	}
	free(span);
	free(gone);
	free(tmp);
	return rc;
}

static void sampler_from(const struct engine_sampling *s, struct sampler_params *p)
{
	sampler_params_default(p);
	p->temperature = s->temperature;
	p->top_k = s->top_k;
	p->top_p = s->top_p;
	p->min_p = s->min_p;
	p->typical_p = s->typical_p;
	p->repeat_penalty = s->repeat_penalty;
	p->repeat_last_n = s->repeat_last_n;
	p->presence_penalty = s->presence_penalty;
	p->frequency_penalty = s->frequency_penalty;
	p->seed = s->seed;
}

/* Make room for one more token during generation: 0, or 1 when the context is full. */
static int make_room(struct engine *e, struct run *r)
{
	int n_past = model_n_past(e->m), n_ctx = e->info.n_ctx;
	if (n_past < n_ctx)
		return 0;
	if (e->cfg.overflow != ENGINE_OVERFLOW_SHIFT)
		return 1;
	int keep = e->cfg.keep + (tokenizer_add_bos(e->tok) ? 1 : 0);
	if (keep > n_past - 2)
		keep = n_past - 2;
	if (keep < 0)
		keep = 0;
	int n_discard = (n_past - keep) / 2;
	if (n_discard < 1 || model_kv_shift(e->m, keep, n_discard) < 0)
		return 1;
	r->st.shifts++;
	return 0;
}

/* PREFILL_PROGRESS, with the figures known before the reply (prompt and
 * reused tokens, turns dropped to fit), so that the owner can say so first. */
static void push_prefill(struct engine *e, const struct run *r, int done, int total)
{
	struct engine_event ev = { 0 };
	ev.type = ENGINE_EV_PREFILL_PROGRESS;
	ev.done = (uint64_t)done;
	ev.total = (uint64_t)total;
	ev.stats = r->st;
	push(e, &ev, PUSH_DROP);
}

/* Size the next prefill chunk from how long c tokens took. */
static void adapt_chunk(struct engine *e, int c, double ms)
{
	if (ms <= 0 || c < 1)
		return;
	double want = CHUNK_TARGET_MS / (ms / c);
	int n = want > e->chunk_max ? e->chunk_max : (int)want;
	if (n < CHUNK_MIN)
		n = CHUNK_MIN;
	/* grow gently: one fast chunk (a short one, a warm cache) proves little */
	if (n > 2 * e->chunk)
		n = 2 * e->chunk;
	e->chunk = n > e->chunk_max ? e->chunk_max : n;
}

/* The first logit that is NaN or infinite, or -1.  A model file with such
 * weights (or scales) loads, and without this check its replies are
 * whatever the sampler makes of NaN. */
static int nonfinite_at(const float *l, int n)
{
	for (int i = 0; i < n; i++)
		if (!isfinite(l[i]))
			return i;
	return -1;
}

/* ---- one request to a remote server ------------------------------------------------- */

struct remote_run {
	struct engine *e;
	struct run *r;
};

/* Text from the server: the reply grows as a local one would. */
static int remote_text(void *ud, int reasoning, const char *text, size_t len)
{
	struct remote_run *rr = ud;
	struct run *r = rr->r;
	const struct job *j = r->job;
	/* the server split the thinking off already */
	if (reasoning) {
		r->st.reasoning_tokens++;
		emit_part(r, REASONING_THOUGHT, text, len);
		return 0;
	}
	if (!r->st.gen_tokens++)
		r->st.ttft_ms = time_now_ms() - j->t_submit;
	size_t old = r->reply.len;
	strbuf_add(&r->reply, text, len);
	if (j->n_stop)
		return scan_stop(rr->e, r, old);
	emit(rr->e, r, r->reply.len);
	return 0;
}

static void run_remote(struct engine *e, struct run *r)
{
	struct job *j = r->job;
	struct remote_result res;
	struct remote_run rr = { e, r };

	if (!j->msgs) {
		push_text(e, ENGINE_EV_ERROR, "a remote server takes conversations, not token ids");
		return;
	}
	if (j->max_tokens == 0) {
		finish(e, r, ENGINE_STOP_MAX_TOKENS);
		return;
	}
	/* the server says nothing of its prefill: 0 of an unknown total */
	push_simple(e, ENGINE_EV_PREFILL_PROGRESS, 0, 0, PUSH_DROP);
	struct remote_request q = { 0 };
	q.messages = j->msgs;
	q.n_messages = j->n_msgs;
	q.sampling = &j->sampling;
	q.max_tokens = j->max_tokens;
	q.deadline = j->max_time > 0 ? r->t_start + j->max_time * 1000.0 : 0;
	q.stop = j->stop;
	q.n_stop = j->n_stop;
	q.think = j->think;
	q.effort = j->effort;
	remote_chat(e->remote, &q, remote_text, &rr, &res);

	double end = time_now_ms();
	struct engine_stats *st = &r->st;
	if (res.t_first > 0) {
		st->prefill_ms = res.prompt_ms > 0 ? res.prompt_ms : res.t_first - r->t_start;
		st->decode_ms = end - res.t_first;
	} else {
		st->prefill_ms = end - r->t_start;
	}
	if (res.usage) {
		st->server_usage = 1;
		st->prompt_tokens = res.prompt_tokens;
		st->gen_tokens = res.completion_tokens;
		st->reused_tokens = res.cached_tokens;
		st->n_ctx_used = res.prompt_tokens + res.completion_tokens;
	}
	st->prefill_tps = res.prompt_tps;
	if (!st->prefill_tps && res.usage && st->prefill_ms > 0)
		st->prefill_tps = (st->prompt_tokens - st->reused_tokens) * 1000.0 / st->prefill_ms;
	/* the first token's time is the prefill's: the rest came in decode_ms */
	if (st->gen_tokens > 1 && st->decode_ms > 0)
		st->decode_tps = (st->gen_tokens - 1) * 1000.0 / st->decode_ms;
	st->server_decode_tps = res.decode_tps;
	r->fail = res.message;
	finish(e, r, res.stop == ENGINE_STOP_NONE ? ENGINE_STOP_EOS : res.stop);
}

/*
 * End a thinking block the model is still writing: feed it the close marker
 * (as the template's own turns write it) so that it answers next, and pass
 * the text on as if sampled.  0, 1 when the context has no room, -1 after
 * error().
 */
static int close_thinking(struct engine *e, struct run *r, const char *open, const char *close)
{
	(void)open;
	struct strbuf text = STRBUF_INIT;
	if (r->split.harmony) /* the analysis message ends; the final one starts */
		strbuf_addf(&text, "%s<|start|>assistant<|channel|>final<|message|>", close);
	else
		strbuf_addf(&text, "\n%s\n\n", close);
	int32_t ids[64];
	int n = tokenizer_encode(e->tok, text.buf, text.len, TOKENIZE_PARSE_SPECIAL, ids, 64);
	if (n <= 0 || n > 64) {
		strbuf_release(&text);
		return n == INT32_MIN ? -1 : error("cannot tokenize the end of the thinking block");
	}
	int pos = model_n_past(e->m);
	if (pos + n >= e->info.n_ctx) {
		strbuf_release(&text);
		return 1;
	}
	if (model_forward(e->m, ids, n, pos, e->logits, 0) < 0) {
		strbuf_release(&text);
		return -1;
	}
	for (int i = 0; i < n; i++)
		sampler_accept(r->smp, ids[i]);
	/* a character the decoder holds half of ends here */
	tokenizer_decoder_flush(r->dec, &r->reply);
	size_t old = r->reply.len;
	strbuf_add(&r->reply, text.buf, text.len);
	strbuf_release(&text);
	if (r->job->n_stop)
		scan_stop(e, r, old);
	else
		emit(e, r, r->reply.len);
	return 0;
}

static void run_job(struct engine *e, struct job *j)
{
	struct run r = { 0 };
	int32_t *prompt = NULL;
	int n_prompt = 0, n_ctx = e->info.n_ctx, n_vocab = e->info.n_vocab;

	r.job = j;
	r.e = e;
	r.t_start = time_now_ms();
	strbuf_init(&r.reply, 0);
	strbuf_init(&r.answer, 0);
	strbuf_init(&r.thought, 0);
	if (e->remote) {
		reasoning_init(&r.split, NULL, NULL, 0, emit_part, &r);
		run_remote(e, &r);
		goto out;
	}
	int thinking = 0;
	if (build_prompt(e, &r, &prompt, &n_prompt, &thinking) < 0) {
		reasoning_init(&r.split, NULL, NULL, 0, emit_part, &r);
		push_text(e, ENGINE_EV_ERROR, error_message());
		goto out;
	}
	const char *open, *close;
	prompt_template_markers(e->tmpl, &open, &close);
	reasoning_init(&r.split, open, close, thinking, emit_part, &r);
	if (n_prompt < 1) {
		push_text(e, ENGINE_EV_ERROR, "the prompt is empty");
		goto out;
	}
	for (int i = 0; i < n_prompt; i++)
		if (prompt[i] < 0 || prompt[i] >= n_vocab) {
			error("token id %d is out of range (vocabulary of %d)", prompt[i], n_vocab);
			push_text(e, ENGINE_EV_ERROR, error_message());
			goto out;
		}
	if (n_prompt + 1 > n_ctx) {
		error("the prompt of %d tokens does not fit the context of %d tokens with room "
		      "for a reply (at least %d)",
		      n_prompt, n_ctx, n_prompt + 1);
		push_text(e, ENGINE_EV_ERROR, error_message());
		goto out;
	}
	/* a conversation also ends where the template's turn ends */
	if (j->msgs) {
		const char *const *ts = prompt_template_stops(e->tmpl);
		for (int i = 0; ts[i] && j->n_stop < ENGINE_MAX_STOP; i++)
			j->stop[j->n_stop++] = xstrdup(ts[i]);
	}
	struct sampler_params sp;
	sampler_from(&j->sampling, &sp);
	r.smp = sampler_new(&sp, n_vocab);
	r.dec = tokenizer_decoder_new(e->tok, 0);
	if (!r.smp || !r.dec) {
		push_text(e, ENGINE_EV_ERROR, error_message());
		goto out;
	}
	for (int i = 0; i < n_prompt; i++)
		sampler_accept(r.smp, prompt[i]);

	if (e->kv_dir && j->session && !j->no_reuse)
		restore(e, &r, prompt, n_prompt);

	/* prefix reuse: keep what the cache shares with the prompt, but always
	 * run at least the last prompt token to get its logits */
	int n_past = model_n_past(e->m), lcp = 0;
	const int32_t *held = model_kv_tokens(e->m);
	while (!j->no_reuse && lcp < n_past && lcp < n_prompt && held[lcp] == prompt[lcp])
		lcp++;
	if (lcp == n_prompt)
		lcp--;
	if (lcp < 0)
		lcp = 0;
	/* a sliding-window model may keep less than asked (kv_cache_truncate) */
	lcp = model_kv_truncate(e->m, lcp);
	if (lcp < 0)
		lcp = 0;
	r.st.prompt_tokens = n_prompt;
	r.st.reused_tokens = lcp;
	if (r.st.restored_tokens > lcp)
		r.st.restored_tokens = lcp;

	/* prefill in chunks, checking the flags in between */
	double t0 = time_now_ms();
	push_prefill(e, &r, lcp, n_prompt);
	for (int done = lcp; done < n_prompt;) {
		if (atomic_load(&e->cancel) || atomic_load(&e->stop)) {
			r.st.prefill_ms = time_now_ms() - t0;
			finish(e, &r, ENGINE_STOP_CANCELLED);
			goto out;
		}
		if (timed_out(&r)) {
			r.st.prefill_ms = time_now_ms() - t0;
			finish(e, &r, ENGINE_STOP_TIMEOUT);
			goto out;
		}
		int c = n_prompt - done < e->chunk ? n_prompt - done : e->chunk;
		double tc = time_now_ms();
		if (model_forward(e->m, prompt + done, c, done,
				  done + c == n_prompt ? e->logits : NULL, 0) < 0) {
			r.st.prefill_ms = time_now_ms() - t0;
			if (atomic_load(&e->stop)) {
				finish(e, &r, ENGINE_STOP_CANCELLED);
			} else {
				r.fail = xstrdup(error_message());
				finish(e, &r, ENGINE_STOP_ERROR);
			}
			goto out;
		}
		done += c;
		adapt_chunk(e, c, time_now_ms() - tc);
		push_prefill(e, &r, done, n_prompt);
	}
	r.st.prefill_ms = time_now_ms() - t0;
	if (r.st.prefill_ms > 0)
		r.st.prefill_tps = (n_prompt - lcp) * 1000.0 / r.st.prefill_ms;

	/* decode */
	r.t_decode = time_now_ms();
	for (;;) {
		if (atomic_load(&e->cancel) || atomic_load(&e->stop)) {
			finish(e, &r, ENGINE_STOP_CANCELLED);
			break;
		}
		if (j->max_tokens == 0) {
			finish(e, &r, ENGINE_STOP_MAX_TOKENS);
			break;
		}
		if (timed_out(&r)) {
			finish(e, &r, ENGINE_STOP_TIMEOUT);
			break;
		}
		if (atomic_exchange(&e->stop_thinking, 0) && reasoning_thinking(&r.split)) {
			int rc = close_thinking(e, &r, open, close);
			if (rc) {
				if (rc > 0 || atomic_load(&e->stop)) {
					finish(e, &r,
					       rc > 0 ? ENGINE_STOP_CONTEXT_FULL
						      : ENGINE_STOP_CANCELLED);
				} else {
					r.fail = xstrdup(error_message());
					finish(e, &r, ENGINE_STOP_ERROR);
				}
				break;
			}
		}
		/* after any pass above: the logits sampled from are the ones checked */
		int bad = nonfinite_at(e->logits, n_vocab);
		if (bad >= 0) {
			error("the model computed a logit that is not a number (token %d at position "
			      "%d is %g): the model file's weights or hyperparameters are broken",
			      bad, model_n_past(e->m) - 1, (double)e->logits[bad]);
			r.fail = xstrdup(error_message());
			finish(e, &r, ENGINE_STOP_ERROR);
			break;
		}
		int32_t t = sampler_sample(r.smp, e->logits);
		if (r.st.gen_tokens == 0)
			r.st.ttft_ms = time_now_ms() - j->t_submit;
		if (prompt_template_is_stop(e->tmpl, t)) {
			finish(e, &r, ENGINE_STOP_EOS);
			break;
		}
		sampler_accept(r.smp, t);
		r.st.gen_tokens++;
		size_t old = r.reply.len;
		tokenizer_decoder_push(r.dec, t, &r.reply);
		/* a marker that is a control token decodes to nothing: the
		 * splitter must see it all the same */
		if (tokenizer_is_control(e->tok, t)) {
			size_t ml;
			const char *mt = tokenizer_text(e->tok, t, &ml);
			/* harmony's markers and headers are made of control
			 * tokens (<|channel|>analysis<|message|>): all count */
			if (mt &&
			    (r.split.harmony || (ml == strlen(open) && !memcmp(mt, open, ml)) ||
			     (ml == strlen(close) && !memcmp(mt, close, ml))))
				strbuf_add(&r.reply, mt, ml);
		}
		if (j->n_stop && scan_stop(e, &r, old)) {
			finish(e, &r, ENGINE_STOP_STOP_STRING);
			break;
		}
		if (!j->n_stop)
			emit(e, &r, r.reply.len);
		if (reasoning_thinking(&r.split))
			r.st.reasoning_tokens++;
		if (j->max_tokens > 0 && r.st.gen_tokens >= j->max_tokens) {
			finish(e, &r, ENGINE_STOP_MAX_TOKENS);
			break;
		}
		if (make_room(e, &r)) {
			finish(e, &r, ENGINE_STOP_CONTEXT_FULL);
			break;
		}
		int pos = model_n_past(e->m);
		if (model_forward(e->m, &t, 1, pos, e->logits, 0) < 0) {
			if (atomic_load(&e->stop)) {
				finish(e, &r, ENGINE_STOP_CANCELLED);
			} else {
				r.fail = xstrdup(error_message());
				finish(e, &r, ENGINE_STOP_ERROR);
			}
			break;
		}
	}
out:
	error_clear();
	if (r.done && e->kv_dir && j->session)
		save_state(e, j);
	free(prompt);
	free(r.fail);
	strbuf_release(&r.reply);
	strbuf_release(&r.answer);
	strbuf_release(&r.thought);
	reasoning_release(&r.split);
	tokenizer_decoder_free(r.dec);
	sampler_free(r.smp);
}

/* ---- the thread and the owner's calls ------------------------------------------------- */

static void job_free(struct job *j)
{
	if (!j)
		return;
	for (int i = 0; i < j->n_msgs; i++)
		free((char *)j->msgs[i].text);
	free(j->msgs);
	free(j->tokens);
	for (int i = 0; i < j->n_stop; i++)
		free(j->stop[i]);
	free(j->session);
	free(j);
}

static void *engine_main(void *arg)
{
	struct engine *e = arg;
	int ok = engine_load(e) == 0;
	if (ok) {
		atomic_store(&e->ready, 1);
		push_simple(e, ENGINE_EV_READY, 0, 0, PUSH_FINAL);
	} else {
		/* refuse submits before the owner can see the ERROR */
		pthread_mutex_lock(&e->mu);
		e->failed = 1;
		pthread_mutex_unlock(&e->mu);
		push_text(e, ENGINE_EV_ERROR,
			  atomic_load(&e->stop) ? "loading cancelled" : error_message());
		error_clear();
	}
	pthread_mutex_lock(&e->mu);
	if (!ok) {
		job_free(e->job);
		e->job = NULL;
		e->busy = 0;
	}
	while (ok) {
		while (!e->job && !e->closing)
			pthread_cond_wait(&e->cv_work, &e->mu);
		if (e->closing)
			break;
		struct job *j = e->job;
		e->job = NULL;
		pthread_mutex_unlock(&e->mu);
		run_job(e, j); /* its DONE or ERROR cleared busy */
		job_free(j);
		pthread_mutex_lock(&e->mu);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

int engine_kernels_configure(const char *isa, const char *cache_dir)
{
	return quant_select_configure(isa, cache_dir);
}

struct engine *engine_open(const struct engine_config *cfg)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	int fds[2];

	int remote = cfg->remote_url && *cfg->remote_url;
	if (!remote && (!cfg->model_path || !*cfg->model_path)) {
		free(e);
		error("no model given");
		return NULL;
	}
	e->cfg = *cfg;
	if (remote) {
		struct remote_params rp = { 0 };
		rp.url = cfg->remote_url;
		rp.model = cfg->remote_model;
		rp.api_key = cfg->remote_api_key;
		rp.timeout = cfg->remote_timeout;
		rp.retries = cfg->remote_retries;
		rp.cancel = &e->cancel;
		rp.stop = &e->stop;
		e->remote = remote_open(&rp);
		if (!e->remote) {
			free(e);
			return NULL;
		}
	}
	/* the remote strings are the remote's copies now */
	e->cfg.remote_url = e->cfg.remote_model = e->cfg.remote_api_key = NULL;
	e->model_path = xstrdup(cfg->model_path ? cfg->model_path : "");
	e->chat_template = xstrdup(cfg->chat_template ? cfg->chat_template : "auto");
	e->cfg.model_path = e->model_path;
	e->cfg.chat_template = e->chat_template;
	/* a server keeps its own cache (if any): states are for the local model */
	e->kv_dir = !remote && cfg->kv_dir && *cfg->kv_dir ? xstrdup(cfg->kv_dir) : NULL;
	e->cfg.kv_dir = e->kv_dir;
	e->cap = cfg->max_buffered_tokens > 0 ? cfg->max_buffered_tokens : QUEUE_DEFAULT;
	if (e->cap > QUEUE_MAX)
		e->cap = QUEUE_MAX;
	e->ring = xcalloc((size_t)e->cap + QUEUE_RESERVE, sizeof(*e->ring));
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		error("cannot create the engine's wakeup pipe: %s", strerror(errno));
		goto fail;
	}
	e->pipe_r = fds[0];
	e->pipe_w = fds[1];
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv_work, NULL);
	pthread_cond_init(&e->cv_space, NULL);
	atomic_init(&e->cancel, 0);
	atomic_init(&e->stop_thinking, 0);
	atomic_init(&e->stop, 0);
	atomic_init(&e->ready, 0);
	int rc = pthread_create(&e->thread, NULL, engine_main, e);
	if (rc) {
		error("cannot start the engine thread: %s", strerror(rc));
		pthread_cond_destroy(&e->cv_space);
		pthread_cond_destroy(&e->cv_work);
		pthread_mutex_destroy(&e->mu);
		close(e->pipe_r);
		close(e->pipe_w);
		goto fail;
	}
	return e;
fail:
	remote_close(e->remote);
	free(e->ring);
	free(e->model_path);
	free(e->chat_template);
	free(e->kv_dir);
	free(e);
	return NULL;
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	atomic_store(&e->stop, 1);
	atomic_store(&e->cancel, 1);
	pthread_mutex_lock(&e->mu);
	e->closing = 1;
	pthread_cond_broadcast(&e->cv_work);
	pthread_cond_broadcast(&e->cv_space);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);

	for (int i = 0; i < e->n; i++)
		engine_event_free(&e->ring[(e->head + i) % (e->cap + QUEUE_RESERVE)]);
	free(e->ring);
	job_free(e->job);
	prompt_template_free(e->tmpl);
	tokenizer_free(e->tok);
	model_free(e->m);
	remote_close(e->remote);
	free(e->logits);
	pthread_cond_destroy(&e->cv_space);
	pthread_cond_destroy(&e->cv_work);
	pthread_mutex_destroy(&e->mu);
	close(e->pipe_r);
	close(e->pipe_w);
	forget_saved(e);
	free(e->model_path);
	free(e->chat_template);
	free(e->kv_dir);
	free(e);
}

/* A copy of a message's text, whose size is the caller's: NULL when there
 * is no memory for it (the request is refused, nothing aborts). */
static char *dup_checked(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *d = try_alloc_array(n + 1, 1);
	if (d) {
		if (n)
			memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

int engine_submit(struct engine *e, const struct engine_request *req)
{
	struct job *j;

	if (!req->messages && (!req->tokens || req->n_tokens <= 0))
		return error("the request has neither messages nor tokens");
	if (req->messages && req->n_messages <= 0)
		return error("the request has no messages");
	if (req->n_stop < 0 || req->n_stop > ENGINE_MAX_STOP)
		return error("%d stop strings (at most %d)", req->n_stop, ENGINE_MAX_STOP);
	if ((unsigned)req->effort > ENGINE_EFFORT_HIGH)
		return error("reasoning effort %d is out of range", (int)req->effort);
	for (int i = 0; i < req->n_stop; i++)
		if (!req->stop[i] || !*req->stop[i])
			return error("stop string %d is empty", i + 1);
	if (req->session && *req->session && !kv_dir_session_ok(req->session))
		return error("invalid session id '%.*s': letters, digits, '-' and '_', at most %d",
			     ENGINE_SESSION_MAX - 1, req->session, ENGINE_SESSION_MAX - 1);

	j = xcalloc(1, sizeof(*j));
	if (req->messages) {
		j->msgs = try_alloc_array((size_t)req->n_messages, sizeof(*j->msgs));
		if (!j->msgs) {
			free(j);
			return error("out of memory for a request of %d messages", req->n_messages);
		}
		for (int i = 0; i < req->n_messages; i++) {
			j->msgs[i].role = req->messages[i].role;
			j->msgs[i].text = dup_checked(req->messages[i].text);
			j->n_msgs = i + 1;
			if (!j->msgs[i].text) {
				job_free(j);
				return error("out of memory for message %d of the request", i + 1);
			}
		}
		j->add_generation_prompt = req->add_generation_prompt;
	} else {
		j->tokens = try_alloc_array((size_t)req->n_tokens, sizeof(int32_t));
		if (!j->tokens) {
			free(j);
			return error("out of memory for a prompt of %d tokens", req->n_tokens);
		}
		memcpy(j->tokens, req->tokens, sizeof(int32_t) * (size_t)req->n_tokens);
		j->n_tokens = req->n_tokens;
	}
	j->sampling = req->sampling;
	j->max_tokens = req->max_tokens;
	j->max_time = req->max_time;
	for (int i = 0; i < req->n_stop; i++)
		j->stop[i] = xstrdup(req->stop[i]);
	j->n_stop = req->n_stop;
	j->no_reuse = req->no_reuse;
	j->think = req->think;
	j->effort = req->effort;
	j->session = req->session && *req->session ? xstrdup(req->session) : NULL;
	j->t_submit = time_now_ms();

	pthread_mutex_lock(&e->mu);
	if (e->failed || e->busy || e->closing) {
		int failed = e->failed;
		pthread_mutex_unlock(&e->mu);
		job_free(j);
		return error(failed ? "the model failed to load" : "a request is already running");
	}
	atomic_store(&e->cancel, 0);
	atomic_store(&e->stop_thinking, 0);
	e->job = j;
	e->busy = 1;
	pthread_cond_signal(&e->cv_work);
	pthread_mutex_unlock(&e->mu);
	return 0;
}

void engine_cancel(struct engine *e)
{
	atomic_store(&e->cancel, 1);
}

void engine_stop_thinking(struct engine *e)
{
	/* a server cannot be told to stop thinking: it stops altogether */
	if (e->remote)
		atomic_store(&e->cancel, 1);
	else
		atomic_store(&e->stop_thinking, 1);
}
