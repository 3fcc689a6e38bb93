/* remote: the engine on a loopback stand-in for llama-server, ollama and vLLM; streams, faults, cancel. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "remote.h"
#include "report.h"
#include "strbuf.h"
#include "util.h"

/*
 * tests/remote/server.py runs for the whole group: started in the group
 * setup on a free loopback port (it prints the port), stopped by closing
 * its standard input.  Each request it gets is a JSON line in LOG.
 */
static pid_t srv_pid;
static int srv_stdin = -1;
static int srv_port;
static char srv_log[64];

static int server_start(void **state)
{
	int in[2], out[2];
	snprintf(srv_log, sizeof(srv_log), "/tmp/palaver-remote-%ld.log", (long)getpid());
	unlink(srv_log);
	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	srv_pid = fork();
	if (srv_pid < 0)
		return -1;
	if (!srv_pid) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execlp("python3", "python3", "tests/remote/server.py", "--log", srv_log,
		       (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	srv_stdin = in[1];
	char buf[32] = { 0 };
	size_t n = 0;
	struct pollfd p = { out[0], POLLIN, 0 };
	while (n < sizeof(buf) - 1 && !strchr(buf, '\n') && poll(&p, 1, 10000) > 0) {
		ssize_t k = read(out[0], buf + n, sizeof(buf) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(out[0]);
	srv_port = atoi(buf);
	if (srv_port <= 0) {
		fprintf(stderr,
			"test_remote: the test server did not start (is python3 installed?)\n");
		return -1;
	}
	return 0;
}

static int server_stop(void **state)
{
	if (srv_stdin >= 0)
		close(srv_stdin);
	if (srv_pid > 0) {
		kill(srv_pid, SIGTERM);
		waitpid(srv_pid, NULL, 0);
	}
	unlink(srv_log);
	return 0;
}

static char url_buf[256];

/* http://127.0.0.1:PORT + path */
static const char *url(const char *path)
{
	snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", srv_port, path);
	return url_buf;
}

static void rconfig(struct engine_config *c, const char *path)
{
	memset(c, 0, sizeof(*c));
	c->remote_url = url(path);
	c->remote_timeout = 5;
	c->remote_retries = 0;
}

static void next(struct engine *e, struct engine_event *ev)
{
	double t0 = time_now_ms();
	while (!engine_next_event(e, ev)) {
		struct pollfd p = { engine_wakeup_fd(e), POLLIN, 0 };
		poll(&p, 1, 100);
		if (time_now_ms() - t0 > 30000)
			fail_msg("no event from the engine in 30 s");
	}
}

/* Open and wait for READY (warnings into warn, when given). */
static struct engine *open_ready(const struct engine_config *c, struct strbuf *warn)
{
	struct engine *e = engine_open(c);
	struct engine_event ev;
	assert_non_null(e);
	for (;;) {
		next(e, &ev);
		if (ev.type == ENGINE_EV_ERROR)
			fail_msg("remote load failed: %s", ev.text);
		if (ev.type == ENGINE_EV_WARNING && warn)
			strbuf_addstr(warn, ev.text);
		int ready = ev.type == ENGINE_EV_READY;
		engine_event_free(&ev);
		if (ready)
			return e;
	}
}

/* Open and expect ERROR: its text (malloc'd). */
static char *open_error(const struct engine_config *c)
{
	struct engine *e = engine_open(c);
	struct engine_event ev;
	assert_non_null(e);
	for (;;) {
		next(e, &ev);
		if (ev.type == ENGINE_EV_READY)
			fail_msg("READY where an ERROR was expected");
		if (ev.type == ENGINE_EV_ERROR) {
			char *t = ev.text;
			ev.text = NULL;
			engine_event_free(&ev);
			engine_close(e);
			return t;
		}
		engine_event_free(&ev);
	}
}

struct reply {
	struct strbuf tokens; /* TOKEN texts joined */
	int n_tokens;
	struct engine_event done;
	int prefill_events;
};

static void request_for(struct engine_request *rq, const struct engine_message *m, int n)
{
	memset(rq, 0, sizeof(*rq));
	rq->messages = m;
	rq->n_messages = n;
	rq->add_generation_prompt = 1;
	rq->sampling.temperature = 0.5f;
	rq->sampling.top_p = 1;
	rq->sampling.seed = 42;
	rq->max_tokens = -1;
}

/* Run rq to its DONE (cancel after cancel_after tokens, when > 0). */
static void run(struct engine *e, const struct engine_request *rq, struct reply *out,
		int cancel_after, double *cancel_ms)
{
	struct engine_event ev;
	double t_cancel = 0;
	memset(out, 0, sizeof(*out));
	strbuf_init(&out->tokens, 0);
	assert_int_equal(engine_submit(e, rq), 0);
	for (;;) {
		next(e, &ev);
		assert_int_not_equal(ev.type, ENGINE_EV_ERROR);
		if (ev.type == ENGINE_EV_TOKEN) {
			strbuf_add(&out->tokens, ev.text, ev.len);
			if (++out->n_tokens == cancel_after) {
				t_cancel = time_now_ms();
				engine_cancel(e);
			}
		} else if (ev.type == ENGINE_EV_PREFILL_PROGRESS) {
			out->prefill_events++;
		} else if (ev.type == ENGINE_EV_DONE) {
			if (cancel_ms)
				*cancel_ms = time_now_ms() - t_cancel;
			out->done = ev;
			return;
		}
		engine_event_free(&ev);
	}
}

static void reply_free(struct reply *r)
{
	strbuf_release(&r->tokens);
	engine_event_free(&r->done);
}

static const struct engine_message hi[] = {
	{ ENGINE_ROLE_SYSTEM, "Be brief." },
	{ ENGINE_ROLE_USER, "hi" },
};

/* One reply from the server at path (a fresh engine). */
static void chat_once(const char *path, double timeout, int retries, struct reply *out)
{
	struct engine_config c;
	struct engine_request rq;
	rconfig(&c, path);
	c.remote_timeout = timeout;
	c.remote_retries = retries;
	struct engine *e = open_ready(&c, NULL);
	request_for(&rq, hi, 2);
	run(e, &rq, out, 0, NULL);
	engine_close(e);
}

#define HELLO "Hello! \xe2\x98\x95 How can I help?"

static const char *done_message(const struct reply *r)
{
	return r->done.message ? r->done.message : "";
}

/* ---- the three servers' streams ------------------------------------------------------ */

static void check_flavor(const char *path, const char *model, int n_ctx, int prompt_tokens)
{
	struct engine_config c;
	struct engine_request rq;
	struct reply r;
	rconfig(&c, path);
	struct engine *e = open_ready(&c, NULL);
	const struct engine_info *in = engine_info(e);
	assert_non_null(in);
	assert_string_equal(in->name, model);
	assert_string_equal(in->backend, "remote");
	assert_string_equal(in->server, url(path));
	assert_int_equal(in->n_ctx, n_ctx);
	request_for(&rq, hi, 2);
	run(e, &rq, &r, 0, NULL);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_EOS);
	assert_string_equal(r.done.text, HELLO);
	assert_string_equal(r.tokens.buf, HELLO);
	assert_int_equal(r.n_tokens, 8);
	assert_int_equal(r.prefill_events, 1);
	assert_int_equal(r.done.stats.server_usage, 1);
	assert_int_equal(r.done.stats.prompt_tokens, prompt_tokens);
	assert_int_equal(r.done.stats.gen_tokens, 8);
	assert_true(r.done.stats.ttft_ms > 0);
	assert_int_equal(r.done.stats.n_ctx, n_ctx);
	assert_int_equal(r.done.stats.n_ctx_used, prompt_tokens + 8);
	reply_free(&r);
	/* a second turn on the same engine (and connection cache) */
	run(e, &rq, &r, 0, NULL);
	assert_string_equal(r.done.text, HELLO);
	reply_free(&r);
	engine_close(e);
}

static void test_llama_server(void **state)
{
	check_flavor("/llama/v1", "qwen2.5-0.5b-instruct-q8_0.gguf", 4096, 21);
}

static void test_ollama(void **state)
{
	check_flavor("/ollama/v1", "llama3.2:latest", 0, 26);
}

static void test_vllm(void **state)
{
	check_flavor("/vllm/v1", "Qwen/Qwen2.5-7B-Instruct", 32768, 30);
}

static void test_llama_timings(void **state)
{
	struct reply r;
	chat_once("/llama/v1", 5, 0, &r);
	/* llama-server's own figures: cache_n, prompt_ms, the speeds */
	assert_int_equal(r.done.stats.reused_tokens, 4);
	assert_true(r.done.stats.prefill_ms > 41.1 && r.done.stats.prefill_ms < 41.3);
	assert_true(r.done.stats.prefill_tps > 412.5 && r.done.stats.prefill_tps < 412.7);
	assert_true(r.done.stats.server_decode_tps > 83.1 && r.done.stats.server_decode_tps < 83.3);
	reply_free(&r);
}

/* The last line of the server's log that contains needle (malloc'd), or NULL. */
static char *log_last(const char *needle)
{
	struct strbuf f = STRBUF_INIT;
	char *found = NULL;
	if (strbuf_read_file(&f, srv_log, (size_t)1 << 30) < 0)
		return NULL;
	for (char *line = strtok(f.buf, "\n"); line; line = strtok(NULL, "\n"))
		if (strstr(line, needle)) {
			free(found);
			found = strdup(line);
		}
	strbuf_release(&f);
	return found;
}

static int log_count(const char *needle)
{
	struct strbuf f = STRBUF_INIT;
	int n = 0;
	if (strbuf_read_file(&f, srv_log, (size_t)1 << 30) < 0)
		return 0;
	for (char *p = f.buf; (p = strstr(p, needle)) != NULL; p++)
		n++;
	strbuf_release(&f);
	return n;
}

static void test_request_body(void **state)
{
	struct engine_config c;
	struct engine_request rq;
	struct reply r;
	rconfig(&c, "/vllm/reqbody/v1");
	c.remote_api_key = "sk-test-1234";
	struct engine *e = open_ready(&c, NULL);
	request_for(&rq, hi, 2);
	rq.max_tokens = 77;
	rq.stop[0] = "END";
	rq.n_stop = 1;
	run(e, &rq, &r, 0, NULL);
	reply_free(&r);
	engine_close(e);
	char *line = log_last("/vllm/reqbody/v1/chat/completions");
	assert_non_null(line);
	assert_non_null(strstr(line, "\"authorization\": \"Bearer sk-test-1234\""));
	assert_non_null(strstr(line, "\"model\": \"Qwen/Qwen2.5-7B-Instruct\""));
	assert_non_null(strstr(line, "{\"role\": \"system\", \"content\": \"Be brief.\"}"));
	assert_non_null(strstr(line, "{\"role\": \"user\", \"content\": \"hi\"}"));
	assert_non_null(strstr(line, "\"stream\": true"));
	assert_non_null(strstr(line, "\"include_usage\": true"));
	assert_non_null(strstr(line, "\"max_tokens\": 77"));
	assert_non_null(strstr(line, "\"stop\": [\"END\"]"));
	assert_non_null(strstr(line, "\"temperature\": 0.5"));
	assert_non_null(strstr(line, "\"seed\": 42"));
	/* filters that are off are not sent */
	assert_null(strstr(line, "top_p"));
	assert_null(strstr(line, "top_k"));
	free(line);
	/* the models request carried the key too */
	line = log_last("/vllm/reqbody/v1/models");
	assert_non_null(strstr(line, "Bearer sk-test-1234"));
	free(line);
}

static void test_no_key_no_header(void **state)
{
	struct reply r;
	chat_once("/llama/nokey/v1", 5, 0, &r);
	reply_free(&r);
	char *line = log_last("/llama/nokey/v1/chat/completions");
	assert_non_null(line);
	assert_non_null(strstr(line, "\"authorization\": null"));
	free(line);
}

/* ---- framing ------------------------------------------------------------------------- */

static void test_bytewise(void **state)
{
	struct reply r;
	chat_once("/llama/bytewise/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_EOS);
	assert_string_equal(r.done.text, HELLO);
	assert_string_equal(r.tokens.buf, HELLO);
	reply_free(&r);
}

static void test_crlf_and_comments(void **state)
{
	struct reply r;
	chat_once("/vllm/crlf/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_EOS);
	assert_string_equal(r.done.text, HELLO);
	reply_free(&r);
}

static void test_keepalive_is_life(void **state)
{
	/* 2 s of comments, a 1 s timeout: the comments keep it alive */
	struct reply r;
	chat_once("/ollama/keepalive/v1", 1, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_EOS);
	assert_string_equal(r.done.text, HELLO);
	reply_free(&r);
}

static void test_not_streamed(void **state)
{
	struct reply r;
	chat_once("/llama/json/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_MAX_TOKENS);
	assert_string_equal(r.done.text, "All at once.");
	assert_int_equal(r.done.stats.prompt_tokens, 9);
	assert_int_equal(r.done.stats.gen_tokens, 3);
	reply_free(&r);
}

/* The server's reasoning_content is thinking: apart from the answer. */
static void test_reasoning_not_in_reply(void **state)
{
	struct reply r;
	chat_once("/llama/reasoning/v1", 5, 0, &r);
	assert_string_equal(r.done.text, "Answer.");
	assert_non_null(r.done.reasoning_text);
	assert_string_equal(r.done.reasoning_text, "Let me think.");
	assert_true(r.done.stats.reasoning_tokens > 0);
	reply_free(&r);
}

/* --think reaches the server's template as chat_template_kwargs, and
 * --reasoning-effort as reasoning_effort too. */
static void test_think_kwarg(void **state)
{
	struct engine_config c;
	struct engine_request rq;
	struct reply r;
	rconfig(&c, "/vllm/think/v1");
	struct engine *e = open_ready(&c, NULL);
	request_for(&rq, hi, 2);
	rq.think = ENGINE_THINK_OFF;
	run(e, &rq, &r, 0, NULL);
	reply_free(&r);
	char *line = log_last("/vllm/think/v1/chat/completions");
	assert_non_null(line);
	assert_non_null(strstr(line, "\"chat_template_kwargs\": {\"enable_thinking\": false}"));
	free(line);
	request_for(&rq, hi, 2);
	run(e, &rq, &r, 0, NULL);
	reply_free(&r);
	line = log_last("/vllm/think/v1/chat/completions");
	assert_null(strstr(line, "chat_template_kwargs"));
	assert_null(strstr(line, "reasoning_effort"));
	free(line);
	/* the reasoning effort goes as OpenAI's parameter and to the template */
	request_for(&rq, hi, 2);
	rq.effort = ENGINE_EFFORT_HIGH;
	run(e, &rq, &r, 0, NULL);
	reply_free(&r);
	line = log_last("/vllm/think/v1/chat/completions");
	assert_non_null(line);
	assert_non_null(strstr(line, "\"chat_template_kwargs\": {\"reasoning_effort\": \"high\"}"));
	const char *first = strstr(line, "\"reasoning_effort\": \"high\"");
	assert_non_null(first); /* twice: the parameter and the template's */
	assert_non_null(strstr(first + 1, "\"reasoning_effort\": \"high\""));
	free(line);
	engine_close(e);
}

static void test_stop_string(void **state)
{
	struct engine_config c;
	struct engine_request rq;
	struct reply r;
	rconfig(&c, "/llama/stopword/v1");
	struct engine *e = open_ready(&c, NULL);
	request_for(&rq, hi, 2);
	rq.stop[0] = "ENDING";
	rq.n_stop = 1;
	run(e, &rq, &r, 0, NULL);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_STOP_STRING);
	assert_string_equal(r.done.text, "one two three ");
	assert_string_equal(r.tokens.buf, "one two three ");
	reply_free(&r);
	engine_close(e);
}

/* ---- faults ---------------------------------------------------------------------------- */

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { 0 };
	socklen_t len = sizeof(a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s); /* nothing listens there now */
	return ntohs(a.sin_port);
}

static void test_connection_refused(void **state)
{
	struct engine_config c;
	char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1", free_port());
	memset(&c, 0, sizeof(c));
	c.remote_url = u;
	c.remote_timeout = 5;
	char *msg = open_error(&c);
	assert_non_null(strstr(msg, "cannot reach 'http://127.0.0.1:"));
	assert_non_null(strstr(msg, "refused"));
	free(msg);
}

static void test_reset_mid_stream(void **state)
{
	struct reply r;
	chat_once("/llama/reset/v1", 5, 2, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "broke mid-reply"));
	/* the words that came are kept, and text was shown: no retry */
	assert_string_equal(r.done.text, "Hello! \xe2\x98\x95");
	assert_int_equal(log_count("/llama/reset/v1/chat"), 1);
	reply_free(&r);
}

static void test_truncated(void **state)
{
	struct reply r;
	chat_once("/vllm/truncated/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "broke mid-reply"));
	assert_string_equal(r.done.text, "Hello! \xe2\x98\x95");
	reply_free(&r);

	chat_once("/ollama/ended/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "ended before the reply was complete"));
	assert_string_equal(r.done.text, "Hello! \xe2\x98\x95 How");
	reply_free(&r);
}

static void test_timeout(void **state)
{
	/* models answer; the chat never does */
	struct engine_config c;
	struct engine_request rq;
	struct reply r;
	rconfig(&c, "/llama/silentchat/v1");
	c.remote_timeout = 1;
	struct engine *e = open_ready(&c, NULL);
	request_for(&rq, hi, 2);
	double t0 = time_now_ms();
	run(e, &rq, &r, 0, NULL);
	double ms = time_now_ms() - t0;
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "no answer from"));
	assert_non_null(strstr(done_message(&r), "in 1 s (remote.timeout)"));
	assert_true(ms >= 1000 && ms < 3000);
	reply_free(&r);
	engine_close(e);

	/* a server that never answers at all: loading says so */
	rconfig(&c, "/llama/silent/v1");
	c.remote_timeout = 1;
	char *msg = open_error(&c);
	assert_non_null(strstr(msg, "no answer from"));
	free(msg);
}

static void test_garbage(void **state)
{
	struct reply r;
	double t0 = time_now_ms();
	chat_once("/llama/garbage/v1", 10, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "malformed stream from"));
	assert_int_equal(r.done.len, 0);
	/* refused at the first megabyte, not after ten */
	assert_true(time_now_ms() - t0 < 10000);
	reply_free(&r);

	chat_once("/llama/html/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "did not answer as an OpenAI-compatible server"));
	assert_non_null(strstr(done_message(&r), "text/html"));
	reply_free(&r);

	chat_once("/llama/malformed/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "malformed stream from"));
	assert_string_equal(r.done.text, "Hello!");
	reply_free(&r);
}

static void test_invalid_utf8(void **state)
{
	struct reply r;
	chat_once("/llama/badutf8/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_EOS);
	assert_string_equal(r.done.text,
			    "caf\xef\xbf\xbd\xef\xbf\xbd ok bad \xef\xbf\xbd\xef\xbf\xbd here "
			    "cut \xef\xbf\xbd end");
	assert_string_equal(r.tokens.buf, r.done.text);
	reply_free(&r);
}

static void test_server_errors(void **state)
{
	struct reply r;
	chat_once("/llama/midstream/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "failed mid-reply: slot unavailable"));
	assert_string_equal(r.done.text, "Hello!");
	reply_free(&r);

	chat_once("/llama/legacyerror/v1", 5, 0, &r);
	assert_non_null(strstr(done_message(&r), "failed mid-reply: out of memory"));
	reply_free(&r);

	chat_once("/llama/e500/v1", 5, 0, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "failed (HTTP 500): the request exceeds the "
						 "available context size"));
	reply_free(&r);

	chat_once("/ollama/e404/v1", 5, 0, &r);
	assert_non_null(strstr(done_message(&r), "has no model 'llama3.2:latest' (HTTP 404): model "
						 "\"nope\" not found, try pulling it first"));
	reply_free(&r);

	chat_once("/vllm/e404/v1", 5, 0, &r);
	assert_non_null(strstr(done_message(&r), "The model `nope` does not exist."));
	reply_free(&r);

	/* 401 stops loading, with the hint */
	struct engine_config c;
	rconfig(&c, "/llama/e401/v1");
	char *msg = open_error(&c);
	assert_non_null(strstr(msg,
			       "refused the request (HTTP 401): Invalid API Key; check the API "
			       "key (remote.api_key_env)"));
	free(msg);
}

static void test_retries(void **state)
{
	struct reply r;
	/* 429 three times (two retries), then the message */
	chat_once("/ollama/e429/v1", 5, 2, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_ERROR);
	assert_non_null(strstr(done_message(&r), "rate limiting requests (HTTP 429): server busy"));
	assert_int_equal(log_count("/ollama/e429/v1/chat"), 3);
	reply_free(&r);

	/* a reset before any byte, then an answer */
	chat_once("/llama/flaky/v1", 5, 1, &r);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_EOS);
	assert_string_equal(r.done.text, HELLO);
	assert_int_equal(log_count("/llama/flaky/v1/chat"), 2);
	reply_free(&r);

	/* 503 with Retry-After, then an answer */
	chat_once("/vllm/busyonce/v1", 5, 1, &r);
	assert_string_equal(r.done.text, HELLO);
	reply_free(&r);

	/* no retries: the first failure is the answer */
	chat_once("/llama/e500/v1", 5, 0, &r);
	assert_int_equal(log_count("/llama/e500/v1/chat"), 2); /* one here, one in server_errors */
	reply_free(&r);
}

/* ---- cancel, time limits, close ---------------------------------------------------- */

static void test_cancel_closes_stream(void **state)
{
	struct engine_config c;
	struct engine_request rq;
	struct reply r;
	double ms;
	rconfig(&c, "/llama/slow/v1");
	struct engine *e = open_ready(&c, NULL);
	request_for(&rq, hi, 2);
	run(e, &rq, &r, 3, &ms);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_CANCELLED);
	assert_true(ms < 100);
	assert_true(!strncmp(r.done.text, "w0 w1 w2 ", 9));
	assert_true(r.done.len < 20);
	reply_free(&r);
	/* the engine takes the next request at once */
	rconfig(&c, "/llama/v1");
	engine_close(e);
	e = open_ready(&c, NULL);
	run(e, &rq, &r, 0, NULL);
	assert_string_equal(r.done.text, HELLO);
	reply_free(&r);
	engine_close(e);
}

static void test_max_time(void **state)
{
	struct engine_config c;
	struct engine_request rq;
	struct reply r;
	rconfig(&c, "/llama/slow/v1");
	struct engine *e = open_ready(&c, NULL);
	request_for(&rq, hi, 2);
	rq.max_time = 0.45;
	run(e, &rq, &r, 0, NULL);
	assert_int_equal(r.done.stats.stop_reason, ENGINE_STOP_TIMEOUT);
	assert_true(!strncmp(r.done.text, "w0 w1 w2 ", 9));
	reply_free(&r);
	engine_close(e);
}

static void test_close_while_streaming(void **state)
{
	struct engine_config c;
	struct engine_request rq;
	struct engine_event ev;
	rconfig(&c, "/llama/slow/v1");
	struct engine *e = open_ready(&c, NULL);
	request_for(&rq, hi, 2);
	assert_int_equal(engine_submit(e, &rq), 0);
	do {
		next(e, &ev);
		engine_event_free(&ev);
	} while (ev.type != ENGINE_EV_TOKEN);
	double t0 = time_now_ms();
	engine_close(e);
	assert_true(time_now_ms() - t0 < 200);
}

/* ---- loading and the rest ---------------------------------------------------------- */

static void test_models(void **state)
{
	struct engine_config c;
	struct engine_model_entry *m;
	int n;
	rconfig(&c, "/ollama/v1");
	assert_int_equal(engine_list_models(&c, &m, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(m[0].id, "llama3.2:latest");
	assert_string_equal(m[1].id, "qwen2.5:7b");
	assert_string_equal(m[1].owner, "library");
	engine_models_free(m, n);
	rconfig(&c, "/vllm/v1");
	assert_int_equal(engine_list_models(&c, &m, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].n_ctx, 32768);
	engine_models_free(m, n);

	/* a model the server does not have: refused with the names it has */
	rconfig(&c, "/ollama/v1");
	c.remote_model = "nope";
	char *msg = open_error(&c);
	assert_non_null(strstr(msg, "has no model 'nope'; it has 'llama3.2:latest', 'qwen2.5:7b'"));
	free(msg);

	/* a server without /models: a warning when the model is named ... */
	struct strbuf warn = STRBUF_INIT;
	rconfig(&c, "/vllm/nomodels/v1");
	c.remote_model = "Qwen/Qwen2.5-7B-Instruct";
	struct engine *e = open_ready(&c, &warn);
	assert_non_null(strstr(warn.buf, "cannot list the models"));
	assert_string_equal(engine_info(e)->name, "Qwen/Qwen2.5-7B-Instruct");
	engine_close(e);
	strbuf_release(&warn);
	/* ... else an error */
	rconfig(&c, "/vllm/nomodels/v1");
	msg = open_error(&c);
	assert_non_null(strstr(msg, "has no /models (HTTP 404)"));
	free(msg);
	/* a bare address gets /v1 */
	char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d", srv_port);
	c.remote_url = u;
	c.remote_model = NULL;
	assert_int_equal(engine_list_models(&c, &m, &n), -1);
	assert_non_null(strstr(error_message(), "/v1' has no /models"));
	error_clear();
}

static void test_refusals(void **state)
{
	struct engine_config c;
	memset(&c, 0, sizeof(c));
	c.remote_url = "ftp://example.com/v1";
	assert_null(engine_open(&c));
	assert_string_equal(error_message(), "'ftp://example.com/v1' is not an http or https URL");
	error_clear();

	/* token requests mean nothing to a server */
	struct engine_request rq;
	struct engine_event ev;
	static const int32_t toks[] = { 1, 2, 3 };
	rconfig(&c, "/llama/v1");
	struct engine *e = open_ready(&c, NULL);
	memset(&rq, 0, sizeof(rq));
	rq.tokens = toks;
	rq.n_tokens = 3;
	rq.max_tokens = 4;
	assert_int_equal(engine_submit(e, &rq), 0);
	next(e, &ev);
	assert_int_equal(ev.type, ENGINE_EV_ERROR);
	assert_string_equal(ev.text, "a remote server takes conversations, not token ids");
	engine_event_free(&ev);
	engine_close(e);
}

static void test_display_url_hides_credentials(void **state)
{
	struct remote_params p = { 0 };
	p.url = "https://user:secret@example.com:8443/api/v1/?key=abc";
	struct remote *r = remote_open(&p);
	assert_non_null(r);
	assert_string_equal(remote_display_url(r), "https://example.com:8443/api/v1");
	remote_close(r);
	p.url = "http://localhost:11434";
	r = remote_open(&p);
	assert_string_equal(remote_display_url(r), "http://localhost:11434/v1");
	remote_close(r);
}

static void test_utf8_clean(void **state)
{
	static const struct {
		const char *in, *out;
		size_t bad;
	} cases[] = {
		{ "plain", "plain", 0 },
		{ "\xe2\x98\x95", "\xe2\x98\x95", 0 },
		{ "a\xffz", "a\xef\xbf\xbdz", 1 },
		{ "\xc3", "\xef\xbf\xbd", 1 },     /* cut short */
		{ "\xe2\x98", "\xef\xbf\xbd", 1 }, /* one maximal subpart */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3 }, /* a surrogate */
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd", 2 },                 /* overlong */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf out = STRBUF_INIT;
		size_t bad = remote_utf8_clean(cases[i].in, strlen(cases[i].in), &out);
		assert_string_equal(out.buf, cases[i].out);
		assert_int_equal(bad, cases[i].bad);
		strbuf_release(&out);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_llama_server),
		cmocka_unit_test(test_ollama),
		cmocka_unit_test(test_vllm),
		cmocka_unit_test(test_llama_timings),
		cmocka_unit_test(test_request_body),
		cmocka_unit_test(test_no_key_no_header),
		cmocka_unit_test(test_bytewise),
		cmocka_unit_test(test_crlf_and_comments),
		cmocka_unit_test(test_keepalive_is_life),
		cmocka_unit_test(test_not_streamed),
		cmocka_unit_test(test_reasoning_not_in_reply),
		cmocka_unit_test(test_think_kwarg),
		cmocka_unit_test(test_stop_string),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_reset_mid_stream),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_server_errors),
		cmocka_unit_test(test_retries),
		cmocka_unit_test(test_cancel_closes_stream),
		cmocka_unit_test(test_max_time),
		cmocka_unit_test(test_close_while_streaming),
		cmocka_unit_test(test_models),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_display_url_hides_credentials),
		cmocka_unit_test(test_utf8_clean),
	};
	return cmocka_run_group_tests(tests, server_start, server_stop);
}
