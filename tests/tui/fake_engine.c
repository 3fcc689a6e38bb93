/* A test double of engine.h for driving the chat by hand before the real engine exists.
 * Never linked into palaver: tests/tui/build-dev.sh links it into a separate binary. */
#include "engine.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QMAX 4096

struct engine {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pipe[2];
	struct engine_event q[QMAX];
	int qh, qt;
	char *prompt;      /* last user message of the pending request */
	int have_req, running, stop;
	atomic_int cancel;
	struct engine_info info;
	int ready;
};

const char *engine_stop_reason_name(enum engine_stop_reason r)
{
	static const char *n[] = { "none", "eos", "max_tokens", "stop_string", "cancelled",
				   "context_full", "error", "timeout" };
	return n[r];
}

static void push(struct engine *e, struct engine_event *ev)
{
	pthread_mutex_lock(&e->mu);
	e->q[e->qt] = *ev;
	e->qt = (e->qt + 1) % QMAX;
	pthread_mutex_unlock(&e->mu);
	(void)!write(e->pipe[1], "x", 1);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void *run(void *arg)
{
	struct engine *e = arg;
	for (int i = 1; i <= 5; i++) {
		struct engine_event ev = { .type = ENGINE_EV_LOAD_PROGRESS, .done = i, .total = 5 };
		push(e, &ev);
		sleep_ms(60);
	}
	strcpy(e->info.name, "fake-model");
	strcpy(e->info.arch, "llama");
	strcpy(e->info.type_name, "F32");
	strcpy(e->info.backend, "cpu");
	strcpy(e->info.chat_template, "none");
	e->info.file_bytes = 1100000;
	e->info.n_params = 260000;
	e->info.n_ctx = 512;
	e->info.n_threads = 2;
	e->ready = 1;
	struct engine_event rd = { .type = ENGINE_EV_READY };
	push(e, &rd);
	for (;;) {
		pthread_mutex_lock(&e->mu);
		while (!e->have_req && !e->stop)
			pthread_cond_wait(&e->cv, &e->mu);
		if (e->stop) {
			pthread_mutex_unlock(&e->mu);
			return NULL;
		}
		char *p = e->prompt;
		e->prompt = NULL;
		e->have_req = 0;
		pthread_mutex_unlock(&e->mu);
		for (int i = 1; i <= 4; i++) {
			struct engine_event ev = { .type = ENGINE_EV_PREFILL_PROGRESS, .done = i * 10, .total = 40 };
			push(e, &ev);
			sleep_ms(40);
		}
		const char *words[] = { "Once ", "upon ", "a ", "time, ", "**there** ", "was ", "a ",
					"`little` ", "fox.\n", "- it ", "ran\n", "```c\n", "int x;\n", "```\n",
					"You said: ", p, "\n" };
		int n = 0, cancelled = 0;
		struct strbuf all = STRBUF_INIT;
		for (int r = 0; r < 3 && !cancelled; r++)
			for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
				if (atomic_load(&e->cancel)) {
					cancelled = 1;
					break;
				}
				struct engine_event ev = { .type = ENGINE_EV_TOKEN };
				ev.text = xstrdup(words[i]);
				ev.len = strlen(words[i]);
				strbuf_addstr(&all, words[i]);
				push(e, &ev);
				n++;
				sleep_ms(50);
			}
		struct engine_event d = { .type = ENGINE_EV_DONE };
		d.stats.prompt_tokens = 40;
		d.stats.gen_tokens = n;
		d.stats.decode_tps = 20;
		d.stats.prefill_tps = 250;
		d.stats.ttft_ms = 170;
		d.stats.n_ctx_used = 40 + n;
		d.stats.n_ctx = 512;
		d.stats.stop_reason = cancelled ? ENGINE_STOP_CANCELLED : ENGINE_STOP_EOS;
		d.len = all.len;
		d.text = strbuf_detach(&all, NULL);
		push(e, &d);
		free(p);
		pthread_mutex_lock(&e->mu);
		e->running = 0;
		pthread_mutex_unlock(&e->mu);
	}
}

struct engine *engine_open(const struct engine_config *cfg)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	(void)cfg;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	if (pipe(e->pipe) < 0)
		return NULL;
	fcntl(e->pipe[0], F_SETFL, O_NONBLOCK);
	pthread_create(&e->th, NULL, run, e);
	return e;
}

void engine_close(struct engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->stop = 1;
	atomic_store(&e->cancel, 1);
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->th, NULL);
	close(e->pipe[0]);
	close(e->pipe[1]);
	free(e);
}

int engine_wakeup_fd(const struct engine *e)
{
	return e->pipe[0];
}

int engine_next_event(struct engine *e, struct engine_event *ev)
{
	char b[64];
	(void)!read(e->pipe[0], b, 1);
	pthread_mutex_lock(&e->mu);
	if (e->qh == e->qt) {
		pthread_mutex_unlock(&e->mu);
		return 0;
	}
	*ev = e->q[e->qh];
	e->qh = (e->qh + 1) % QMAX;
	pthread_mutex_unlock(&e->mu);
	return 1;
}

void engine_event_free(struct engine_event *ev)
{
	free(ev->text);
	ev->text = NULL;
}

int engine_submit(struct engine *e, const struct engine_request *req)
{
	pthread_mutex_lock(&e->mu);
	if (e->running) {
		pthread_mutex_unlock(&e->mu);
		return error("a request is already running");
	}
	e->running = 1;
	e->have_req = 1;
	atomic_store(&e->cancel, 0);
	const char *last = "";
	for (int i = 0; i < req->n_messages; i++)
		if (req->messages[i].role == ENGINE_ROLE_USER)
			last = req->messages[i].text;
	e->prompt = xstrdup(last);
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	return 0;
}

void engine_cancel(struct engine *e)
{
	atomic_store(&e->cancel, 1);
}

const struct engine_info *engine_info(const struct engine *e)
{
	return e->ready ? &e->info : NULL;
}
