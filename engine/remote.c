/* The remote backend: chat completions streamed over HTTP with libcurl, JSON with jansson. */
#include "remote.h"

#include "report.h"
#include "sse.h"
#include "unicode.h"
#include "util.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * DESIGN
 * One request is one curl easy handle driven by a multi handle, so that
 * the thread never blocks in the network for longer than REMOTE_SLICE_MS:
 * between slices it looks at the cancel and stop flags (a cancel removes
 * the handle, which closes the connection), the reply's deadline and how
 * long the server has been silent (remote.timeout; keep-alive comments
 * count as life).  Bytes of a 200 text/event-stream answer go through the
 * SSE parser to handle_chunk(); any other answer is kept, up to BODY_MAX,
 * for its error message or, from a server that ignored "stream", as the
 * whole reply.
 *
 * A failure is retried (remote.retries times, with a growing pause, or the
 * server's Retry-After) only while no text has arrived: a refused or
 * broken connection, 429 and 502-504.  Once text is shown, a retry would
 * show a different reply: the partial one is kept and the error said.
 *
 * Everything the server says that reaches a message is cut to one line of
 * printable text (clean_message()); the API key is only ever handed to
 * curl as a header.
 */

#define BODY_MAX (4u << 20)
#define MESSAGE_MAX 300
#define RETRY_PAUSE_MS 250.0
#define RETRY_PAUSE_MAX_MS 10000.0

struct remote {
	char *base;    /* ".../v1", no trailing slash */
	char *root;    /* base less "/v1": where llama-server's /props is */
	char *display; /* base without credentials or query */
	char *model;   /* configured, or chosen by remote_connect() */
	char *auth;    /* "Authorization: Bearer ...", or NULL */
	double timeout;
	int retries;
	atomic_int *cancel, *stop;
	int connecting;   /* remote_connect() runs: only stop counts, not a request's cancel */
	long last_status; /* of the last GET, 0 = no answer */
	CURL *easy;       /* kept between requests: its connection cache */
	CURLM *multi;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_start(void)
{
	curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* ---- text from the server ---------------------------------------------------------- */

size_t remote_utf8_clean(const char *s, size_t n, struct strbuf *out)
{
	size_t bad_count = 0;
	for (size_t i = 0; i < n;) {
		size_t k = i;
		while (k < n && (unsigned char)s[k] < 0x80)
			k++;
		strbuf_add(out, s + i, k - i);
		i = k;
		if (i >= n)
			break;
		uint32_t cp;
		size_t bad = 1;
		int len = unicode_decode_strict((const unsigned char *)s + i, n - i, &cp, &bad);
		if (len > 0) {
			strbuf_add(out, s + i, (size_t)len);
			i += (size_t)len;
			continue;
		}
		/* 0: a sequence cut short by the end of the text */
		if (len == 0)
			bad = n - i;
		strbuf_addstr(out, "\xef\xbf\xbd");
		bad_count++;
		i += bad ? bad : 1;
	}
	return bad_count;
}

/* A server's words for a message: valid UTF-8, one line, no control
 * characters, at most MESSAGE_MAX bytes. */
static void clean_message(const char *s, size_t n, struct strbuf *out)
{
	struct strbuf u = STRBUF_INIT;
	remote_utf8_clean(s, n, &u);
	size_t start = out->len;
	int space = 0;
	for (size_t i = 0; i < u.len; i++) {
		unsigned char c = (unsigned char)u.buf[i];
		if (c < 0x20 || c == 0x7f) {
			space = out->len > start;
			continue;
		}
		if (space && c != ' ')
			strbuf_addch(out, ' ');
		space = 0;
		if (out->len - start >= MESSAGE_MAX && (c & 0xc0) != 0x80) {
			strbuf_addstr(out, "\xe2\x80\xa6");
			break;
		}
		strbuf_addch(out, (char)c);
	}
	strbuf_release(&u);
}

/* The message in an error body: OpenAI's and llama-server's
 * {"error":{"message":...}}, ollama's {"error":"..."}, vLLM's
 * {"object":"error","message":...}, FastAPI's {"detail":...}; else the
 * body's text.  Appended to out, cleaned; nothing for an empty body. */
static void error_text(const char *body, size_t n, struct strbuf *out)
{
	json_error_t je;
	json_t *root = n ? json_loadb(body, n, 0, &je) : NULL;
	const char *msg = NULL;
	size_t len = 0;
	if (root && json_is_object(root)) {
		json_t *e = json_object_get(root, "error");
		json_t *m = NULL;
		if (json_is_string(e))
			m = e;
		else if (json_is_object(e))
			m = json_object_get(e, "message");
		if (!json_is_string(m))
			m = json_object_get(root, "message");
		if (!json_is_string(m))
			m = json_object_get(root, "detail");
		if (json_is_string(m)) {
			msg = json_string_value(m);
			len = json_string_length(m);
		}
	}
	if (msg)
		clean_message(msg, len, out);
	else if (n)
		clean_message(body, n, out);
	json_decref(root);
}

/* ---- one transfer ------------------------------------------------------------------ */

/* Why perform() ended besides curl's own result. */
enum xfer_end {
	END_CURL,     /* the transfer ended; see result */
	END_CANCEL,   /* the cancel or stop flag */
	END_DEADLINE, /* the reply's max_time */
	END_IDLE,     /* the server was silent for remote.timeout */
	END_HANDLER,  /* the stream handler stopped it (done, stop string, bad data) */
};

struct chat_state;

/* What the stream handler returns to stop the stream. */
enum { HANDLER_DONE = 1, HANDLER_STOP, HANDLER_FAIL };

struct xfer {
	struct remote *r;
	long status;           /* HTTP status of the final answer */
	char content_type[64]; /* its Content-Type, lowercase */
	double retry_after;    /* seconds, 0 = not sent */
	struct strbuf body;    /* a non-stream answer (at most BODY_MAX) */
	int too_big;           /* ... that was larger */
	int mode;              /* 0 undecided, 1 stream, 2 body */
	struct sse_parser sse; /* mode 1 */
	int handler_rc;        /* what stopped sse_feed(): HANDLER_*, or -1 */
	struct chat_state *cs; /* NULL: no stream expected (GET) */
	double last_byte;      /* time_now_ms() of the last byte or header */
	double deadline;       /* 0 = none */
	size_t received;       /* body bytes */
	CURLcode result;
	long os_errno; /* the system's reason for a failed connect */
	char errbuf[CURL_ERROR_SIZE];
};

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	x->last_byte = time_now_ms();
	if (len >= 5 && !strncasecmp(buf, "HTTP/", 5)) {
		/* a new answer (after a 100 Continue): forget the last one's headers */
		x->content_type[0] = 0;
		x->retry_after = 0;
	} else if (len > 13 && !strncasecmp(buf, "content-type:", 13)) {
		const char *v = buf + 13;
		size_t k = 0;
		while (v < buf + len && *v == ' ')
			v++;
		while (v < buf + len && k + 1 < sizeof(x->content_type) && *v != '\r' && *v != '\n')
			x->content_type[k++] = (char)(*v >= 'A' && *v <= 'Z' ? *v + 32 : *v), v++;
		x->content_type[k] = 0;
	} else if (len > 12 && !strncasecmp(buf, "retry-after:", 12)) {
		x->retry_after = strtod(buf + 12, NULL);
		if (x->retry_after < 0)
			x->retry_after = 0;
	}
	return len;
}

static int handle_event(void *ud, const char *event, const char *data, size_t len);

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	x->last_byte = time_now_ms();
	x->received += len;
	if (!x->mode) {
		curl_easy_getinfo(x->r->easy, CURLINFO_RESPONSE_CODE, &x->status);
		x->mode = x->cs && x->status == 200 &&
					  !strncmp(x->content_type, "text/event-stream", 17)
				  ? 1
				  : 2;
		if (x->mode == 1)
			sse_init(&x->sse, handle_event, x->cs);
	}
	if (x->mode == 1) {
		int rc = sse_feed(&x->sse, buf, len);
		x->handler_rc = rc;
		/* handing text over may have waited for the owner: that was not
		 * the server's silence */
		x->last_byte = time_now_ms();
		return rc ? 0 : len;
	}
	if (x->body.len + len > BODY_MAX) {
		x->too_big = 1;
		return 0;
	}
	strbuf_add(&x->body, buf, len);
	return len;
}

static int flag_set(atomic_int *f)
{
	return f && atomic_load(f);
}

static int cancelled(const struct remote *r)
{
	return (!r->connecting && flag_set(r->cancel)) || flag_set(r->stop);
}

/* Run the handle prepared in r->easy to its end, in slices. */
static enum xfer_end perform(struct remote *r, struct xfer *x)
{
	enum xfer_end end = END_CURL;
	int running = 1;

	x->last_byte = time_now_ms();
	curl_multi_add_handle(r->multi, r->easy);
	for (;;) {
		CURLMcode mc = curl_multi_perform(r->multi, &running);
		if (mc != CURLM_OK) {
			x->result = CURLE_FAILED_INIT;
			snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_multi_strerror(mc));
			break;
		}
		if (!running)
			break;
		if (cancelled(r)) {
			end = END_CANCEL;
			break;
		}
		double now = time_now_ms();
		if (x->deadline > 0 && now >= x->deadline) {
			end = END_DEADLINE;
			break;
		}
		if (r->timeout > 0 && now - x->last_byte > r->timeout * 1000.0) {
			end = END_IDLE;
			break;
		}
		curl_multi_poll(r->multi, NULL, 0, REMOTE_SLICE_MS, NULL);
	}
	if (end == END_CURL) {
		int q;
		CURLMsg *m;
		while ((m = curl_multi_info_read(r->multi, &q)) != NULL)
			if (m->msg == CURLMSG_DONE)
				x->result = m->data.result;
		if (x->result == CURLE_WRITE_ERROR && x->mode == 1)
			end = END_HANDLER;
	}
	if (!x->status)
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &x->status);
	curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &x->os_errno);
	/* removing the handle mid-transfer closes its connection: the stream ends */
	curl_multi_remove_handle(r->multi, r->easy);
	return end;
}

/* Set up r->easy for url; body NULL = GET. */
static void prepare(struct remote *r, struct xfer *x, const char *url, const char *body,
		    struct curl_slist **headers)
{
	CURL *h = r->easy;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "palaver/" PALAVER_VERSION);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (r->timeout > 0)
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->timeout * 1000.0));
	*headers = curl_slist_append(NULL, "Accept: application/json, text/event-stream");
	if (r->auth)
		*headers = curl_slist_append(*headers, r->auth);
	if (body) {
		*headers = curl_slist_append(*headers, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
	x->r = r;
	x->errbuf[0] = 0;
	strbuf_init(&x->body, 0);
}

static void xfer_release(struct xfer *x)
{
	strbuf_release(&x->body);
	if (x->mode == 1)
		sse_free(&x->sse);
}

/* What curl said went wrong, as a message about the server. */
static void network_message(const struct remote *r, const struct xfer *x, int mid_reply,
			    struct strbuf *out)
{
	const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result);
	switch (x->result) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		/* "Connection refused" says more than curl's "Couldn't connect" */
		strbuf_addf(out, "cannot reach '%s': %s", r->display,
			    x->os_errno ? strerror((int)x->os_errno) : why);
		break;
	case CURLE_OPERATION_TIMEDOUT:
		strbuf_addf(out, "cannot reach '%s' in %g s (remote.timeout): %s", r->display,
			    r->timeout, why);
		break;
	default:
		if (mid_reply)
			strbuf_addf(out, "the connection to '%s' broke mid-reply: %s", r->display,
				    why);
		else
			strbuf_addf(out, "the connection to '%s' failed: %s", r->display, why);
	}
}

/* An HTTP error status as a message (body: the server's explanation);
 * path: the endpoint asked ("/models", "/chat/completions"). */
static void http_message(const struct remote *r, const struct xfer *x, const char *path,
			 struct strbuf *out)
{
	struct strbuf said = STRBUF_INIT;
	error_text(x->body.buf, x->body.len, &said);
	long s = x->status;
	int chat = !strcmp(path, "/chat/completions");
	if (s == 401 || s == 403)
		strbuf_addf(out, "'%s' refused the request (HTTP %ld)", r->display, s);
	else if (s == 404 && chat)
		strbuf_addf(out, "'%s' has no model '%s' (HTTP 404)", r->display,
			    r->model ? r->model : "");
	else if (s == 404)
		strbuf_addf(out, "'%s' has no %s (HTTP 404)", r->display, path);
	else if (s == 429)
		strbuf_addf(out, "'%s' is rate limiting requests (HTTP 429)", r->display);
	else if (s >= 500)
		strbuf_addf(out, "'%s' failed (HTTP %ld)", r->display, s);
	else
		strbuf_addf(out, "'%s' rejected the request (HTTP %ld)", r->display, s);
	if (said.len)
		strbuf_addf(out, ": %s", said.buf);
	if (s == 401 || s == 403)
		strbuf_addstr(out, "; check the API key (remote.api_key_env)");
	else if (s == 404 && chat)
		strbuf_addstr(out, "; 'palaver models' lists the server's models");
	else if (s == 404)
		strbuf_addstr(out, "; is it the server's API address (it usually ends in /v1)?");
	strbuf_release(&said);
}

/* ---- opening ------------------------------------------------------------------------ */

static char *url_part(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	if (curl_url_get(u, part, &v, 0) != CURLUE_OK)
		return NULL;
	char *copy = xstrdup(v);
	curl_free(v);
	return copy;
}

struct remote *remote_open(const struct remote_params *p)
{
	pthread_once(&curl_once, curl_start);
	if (!curl_ok) {
		error("cannot start libcurl");
		return NULL;
	}
	if (!p->url || !*p->url) {
		error("no remote server given");
		return NULL;
	}
	CURLU *u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, p->url, 0) != CURLUE_OK) {
		curl_url_cleanup(u);
		error("'%s' is not a URL", p->url);
		return NULL;
	}
	char *scheme = url_part(u, CURLUPART_SCHEME);
	if (!scheme || (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
		error("'%s' is not an http or https URL", p->url);
		free(scheme);
		curl_url_cleanup(u);
		return NULL;
	}
	char *host = url_part(u, CURLUPART_HOST);
	char *port = url_part(u, CURLUPART_PORT);
	char *path = url_part(u, CURLUPART_PATH);
	char *query = url_part(u, CURLUPART_QUERY);
	struct strbuf base = STRBUF_INIT, disp = STRBUF_INIT, root = STRBUF_INIT;
	size_t pl = path ? strlen(path) : 0;
	while (pl && path[pl - 1] == '/')
		pl--;
	/* a bare server address means the usual /v1 */
	int add_v1 = pl == 0;
	int has_v1 = pl >= 3 && !strncmp(path + pl - 3, "/v1", 3);

	strbuf_addf(&disp, "%s://%s", scheme, host ? host : "");
	if (port)
		strbuf_addf(&disp, ":%s", port);
	strbuf_add(&disp, path ? path : "", pl);
	if (add_v1)
		strbuf_addstr(&disp, "/v1");
	/* the URL as given (credentials and query included) is what is asked */
	char *full = url_part(u, CURLUPART_URL);
	if (query) {
		/* a query would end up before /models: keep it out of the base */
		curl_url_set(u, CURLUPART_QUERY, NULL, 0);
		free(full);
		full = url_part(u, CURLUPART_URL);
	}
	size_t fl = full ? strlen(full) : 0;
	while (fl && full[fl - 1] == '/')
		fl--;
	strbuf_add(&base, full ? full : "", fl);
	if (add_v1)
		strbuf_addstr(&base, "/v1");
	strbuf_addstr(&root, base.buf);
	if (add_v1 || has_v1)
		strbuf_setlen(&root, root.len - 3);
	free(full);
	free(scheme);
	free(host);
	free(port);
	free(path);
	free(query);
	curl_url_cleanup(u);

	struct remote *r = xcalloc(1, sizeof(*r));
	r->base = strbuf_detach(&base, NULL);
	r->root = strbuf_detach(&root, NULL);
	r->display = strbuf_detach(&disp, NULL);
	r->model = p->model && *p->model ? xstrdup(p->model) : NULL;
	if (p->api_key && *p->api_key) {
		struct strbuf a = STRBUF_INIT;
		strbuf_addf(&a, "Authorization: Bearer %s", p->api_key);
		r->auth = strbuf_detach(&a, NULL);
	}
	r->timeout = p->timeout;
	r->retries = p->retries;
	r->cancel = p->cancel;
	r->stop = p->stop;
	r->easy = curl_easy_init();
	r->multi = curl_multi_init();
	if (!r->easy || !r->multi) {
		remote_close(r);
		error("cannot start libcurl");
		return NULL;
	}
	return r;
}

void remote_close(struct remote *r)
{
	if (!r)
		return;
	if (r->easy)
		curl_easy_cleanup(r->easy);
	if (r->multi)
		curl_multi_cleanup(r->multi);
	if (r->auth) {
		/* the key does not outlive its use in freed memory */
		memset(r->auth, 0, strlen(r->auth));
		free(r->auth);
	}
	free(r->base);
	free(r->root);
	free(r->display);
	free(r->model);
	free(r);
}

const char *remote_display_url(const struct remote *r)
{
	return r->display;
}

/* ---- GET requests ------------------------------------------------------------------- */

/* GET base-or-root + path into *out (parsed JSON).  Sets *status; 0, or -1
 * with error().  An HTTP error status is -1 too, its message in error(). */
static int get_json(struct remote *r, const char *prefix, const char *path, json_t **out,
		    long *status)
{
	struct xfer x;
	struct curl_slist *hdr = NULL;
	struct strbuf url = STRBUF_INIT, msg = STRBUF_INIT;
	int rc = -1;

	memset(&x, 0, sizeof(x));
	*out = NULL;
	strbuf_addf(&url, "%s%s", prefix, path);
	prepare(r, &x, url.buf, NULL, &hdr);
	enum xfer_end end = perform(r, &x);
	*status = x.status;
	r->last_status = x.status;
	if (end == END_CANCEL) {
		error("cancelled");
	} else if (end == END_IDLE) {
		error("no answer from '%s' in %g s (remote.timeout)", r->display, r->timeout);
	} else if (x.too_big) {
		error("the answer of '%s' to %s is larger than %u bytes", r->display, path,
		      BODY_MAX);
	} else if (x.result != CURLE_OK) {
		network_message(r, &x, 0, &msg);
		error("%s", msg.buf);
	} else if (x.status != 200) {
		http_message(r, &x, path, &msg);
		error("%s", msg.buf);
	} else {
		json_error_t je;
		*out = json_loadb(x.body.buf, x.body.len, 0, &je);
		if (!*out)
			error("'%s' answered %s with malformed JSON: %s", r->display, path,
			      je.text);
		else
			rc = 0;
	}
	curl_slist_free_all(hdr);
	xfer_release(&x);
	strbuf_release(&url);
	strbuf_release(&msg);
	return rc;
}

static int json_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		return i > 0 && i < (1 << 30) ? (int)i : 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		return d > 0 && d < (1 << 30) ? (int)d : 0;
	}
	return 0;
}

int remote_models(struct remote *r, struct engine_model_entry **out, int *n)
{
	json_t *root;
	long status;
	*out = NULL;
	*n = 0;
	if (get_json(r, r->base, "/models", &root, &status) < 0)
		return -1;
	json_t *data = json_object_get(root, "data");
	if (!json_is_array(data)) {
		json_decref(root);
		return error("'%s' answered /models without a \"data\" list", r->display);
	}
	size_t count = json_array_size(data);
	struct engine_model_entry *m = xcalloc(count ? count : 1, sizeof(*m));
	int k = 0;
	for (size_t i = 0; i < count; i++) {
		json_t *it = json_array_get(data, i);
		json_t *id = json_object_get(it, "id");
		if (!json_is_string(id))
			continue;
		struct strbuf s = STRBUF_INIT;
		clean_message(json_string_value(id), json_string_length(id), &s);
		m[k].id = strbuf_detach(&s, NULL);
		json_t *owner = json_object_get(it, "owned_by");
		if (json_is_string(owner)) {
			clean_message(json_string_value(owner), json_string_length(owner), &s);
			m[k].owner = strbuf_detach(&s, NULL);
		}
		/* vLLM says what it serves; llama-server's meta only the training length */
		m[k].n_ctx = json_int(it, "max_model_len");
		k++;
	}
	json_decref(root);
	*out = m;
	*n = k;
	return 0;
}

int engine_list_models(const struct engine_config *cfg, struct engine_model_entry **out, int *n)
{
	struct remote_params p = { 0 };
	p.url = cfg->remote_url;
	p.api_key = cfg->remote_api_key;
	p.timeout = cfg->remote_timeout;
	struct remote *r = remote_open(&p);
	if (!r)
		return -1;
	int rc = remote_models(r, out, n);
	remote_close(r);
	return rc;
}

void engine_models_free(struct engine_model_entry *m, int n)
{
	for (int i = 0; i < n; i++) {
		free(m[i].id);
		free(m[i].owner);
	}
	free(m);
}

static int connect_models(struct remote *r, struct engine_info *info, struct strbuf *warn)
{
	struct engine_model_entry *m;
	int n, pick = -1;

	if (remote_models(r, &m, &n) < 0) {
		/* a server without the endpoint may still chat, if told which model */
		if (!r->model || cancelled(r) || (r->last_status != 404 && r->last_status != 405))
			return -1;
		strbuf_addf(warn, "cannot list the models of '%s' (%s); using '%s' as given",
			    r->display, error_message(), r->model);
		error_clear();
		n = 0;
		m = NULL;
	} else if (r->model) {
		for (int i = 0; i < n && pick < 0; i++)
			if (!strcmp(m[i].id, r->model))
				pick = i;
		if (pick < 0) {
			struct strbuf have = STRBUF_INIT;
			for (int i = 0; i < n && i < 8; i++)
				strbuf_addf(&have, "%s'%s'", i ? ", " : "", m[i].id);
			if (n > 8)
				strbuf_addf(&have, " and %d more", n - 8);
			error("'%s' has no model '%s'; it has %s", r->display, r->model,
			      n ? have.buf : "none");
			strbuf_release(&have);
			engine_models_free(m, n);
			return -1;
		}
	} else if (!n) {
		engine_models_free(m, n);
		return error("'%s' lists no models; name one with --remote-model", r->display);
	} else {
		pick = 0;
		r->model = xstrdup(m[0].id);
	}

	int n_ctx = pick >= 0 ? m[pick].n_ctx : 0;
	int llama = pick >= 0 && m[pick].owner && !strcmp(m[pick].owner, "llamacpp");
	engine_models_free(m, n);
	if (llama && !n_ctx) {
		/* llama-server: the context each slot really has */
		json_t *props;
		long status;
		if (get_json(r, r->root, "/props", &props, &status) == 0) {
			json_t *dgs = json_object_get(props, "default_generation_settings");
			n_ctx = json_int(dgs, "n_ctx");
			json_decref(props);
		}
		error_clear();
	}
	snprintf(info->name, sizeof(info->name), "%s", r->model);
	snprintf(info->arch, sizeof(info->arch), "remote");
	snprintf(info->backend, sizeof(info->backend), "remote");
	snprintf(info->chat_template, sizeof(info->chat_template), "server");
	snprintf(info->server, sizeof(info->server), "%s", r->display);
	info->n_ctx = n_ctx;
	info->n_ctx_train = n_ctx;
	return 0;
}

int remote_connect(struct remote *r, struct engine_info *info, struct strbuf *warn)
{
	memset(info, 0, sizeof(*info));
	r->connecting = 1;
	int rc = connect_models(r, info, warn);
	r->connecting = 0;
	return rc;
}

/* ---- one reply ---------------------------------------------------------------------- */

struct chat_state {
	struct remote *r;
	remote_text_fn fn;
	void *ud;
	struct remote_result *res;
	struct strbuf fail; /* why the handler stopped the stream */
	int done;           /* [DONE] or a finish_reason came */
	int client_stop;    /* the text callback ended the reply */
	struct strbuf clean;
};

static void take_usage(struct chat_state *cs, json_t *o)
{
	json_t *u = json_object_get(o, "usage");
	if (json_is_object(u)) {
		cs->res->usage = 1;
		cs->res->prompt_tokens = json_int(u, "prompt_tokens");
		cs->res->completion_tokens = json_int(u, "completion_tokens");
		json_t *d = json_object_get(u, "prompt_tokens_details");
		if (json_is_object(d))
			cs->res->cached_tokens = json_int(d, "cached_tokens");
	}
	json_t *t = json_object_get(o, "timings");
	if (json_is_object(t)) {
		json_t *v;
		if (json_is_number(v = json_object_get(t, "prompt_ms")))
			cs->res->prompt_ms = json_number_value(v);
		if (json_is_number(v = json_object_get(t, "prompt_per_second")))
			cs->res->prompt_tps = json_number_value(v);
		if (json_is_number(v = json_object_get(t, "predicted_per_second")))
			cs->res->decode_tps = json_number_value(v);
		if (!cs->res->cached_tokens)
			cs->res->cached_tokens = json_int(t, "cache_n");
	}
}

/* Hand a text field over, cleaned.  Non-zero: stop. */
static int give_text(struct chat_state *cs, json_t *v, int reasoning)
{
	if (!json_is_string(v) || !json_string_length(v))
		return 0;
	strbuf_reset(&cs->clean);
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	/* JSON may carry \u0000; a NUL in a reply would cut C strings short */
	for (size_t i = 0; i < n; i++)
		if (s[i])
			strbuf_addch(&cs->clean, s[i]);
	if (!cs->clean.len)
		return 0;
	if (!reasoning) {
		if (!cs->res->chunks++)
			cs->res->t_first = time_now_ms();
	}
	if (cs->fn(cs->ud, reasoning, cs->clean.buf, cs->clean.len)) {
		cs->client_stop = 1;
		return HANDLER_STOP;
	}
	return 0;
}

static int server_error(struct chat_state *cs, const char *data, size_t len)
{
	struct strbuf said = STRBUF_INIT;
	error_text(data, len, &said);
	strbuf_addf(&cs->fail, "'%s' failed mid-reply: %s", cs->r->display,
		    said.len ? said.buf : "an error without a message");
	strbuf_release(&said);
	return HANDLER_FAIL;
}

/* One parsed chunk (or a whole non-streamed completion). */
static int handle_chunk(struct chat_state *cs, json_t *o, const char *data, size_t len)
{
	json_t *err = json_object_get(o, "error");
	json_t *obj = json_object_get(o, "object");
	if (err || (json_is_string(obj) && !strcmp(json_string_value(obj), "error")))
		return server_error(cs, data, len);
	take_usage(cs, o);
	json_t *choices = json_object_get(o, "choices");
	if (json_is_array(choices) && json_array_size(choices)) {
		json_t *c = json_array_get(choices, 0);
		json_t *d = json_object_get(c, "delta");
		if (!json_is_object(d))
			d = json_object_get(c, "message"); /* a non-streamed answer */
		if (json_is_object(d)) {
			int rc;
			json_t *rs = json_object_get(d, "reasoning_content");
			if (!rs)
				rs = json_object_get(d, "reasoning");
			if ((rc = give_text(cs, rs, 1)) ||
			    (rc = give_text(cs, json_object_get(d, "content"), 0)))
				return rc;
		}
		json_t *fin = json_object_get(c, "finish_reason");
		if (json_is_string(fin)) {
			cs->done = 1;
			cs->res->stop = !strcmp(json_string_value(fin), "length")
						? ENGINE_STOP_MAX_TOKENS
						: ENGINE_STOP_EOS;
		}
	} else if (!json_is_array(choices) && !json_object_get(o, "usage")) {
		strbuf_addf(&cs->fail, "malformed stream from '%s': a chunk without \"choices\"",
			    cs->r->display);
		return HANDLER_FAIL;
	}
	return 0;
}

static int parse_and_handle(struct chat_state *cs, const char *data, size_t len)
{
	struct strbuf u = STRBUF_INIT;
	json_error_t je;
	/* invalid UTF-8 inside a string is the server's bug, not a reason to
	 * lose the reply: it becomes U+FFFD before the strict parser sees it */
	remote_utf8_clean(data, len, &u);
	json_t *o = json_loadb(u.buf, u.len, JSON_ALLOW_NUL, &je);
	int rc;
	if (!o || !json_is_object(o)) {
		struct strbuf head = STRBUF_INIT;
		clean_message(data, len < 60 ? len : 60, &head);
		strbuf_addf(&cs->fail, "malformed stream from '%s': %s in '%s%s'", cs->r->display,
			    o ? "not a JSON object" : je.text, head.buf,
			    len > 60 ? "\xe2\x80\xa6" : "");
		strbuf_release(&head);
		rc = HANDLER_FAIL;
	} else {
		rc = handle_chunk(cs, o, data, len);
	}
	json_decref(o);
	strbuf_release(&u);
	return rc;
}

static int handle_event(void *ud, const char *event, const char *data, size_t len)
{
	struct chat_state *cs = ud;
	if (cancelled(cs->r))
		return HANDLER_STOP;
	if (!strcmp(event, "error"))
		return server_error(cs, data, len);
	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		cs->done = 1;
		return HANDLER_DONE;
	}
	return parse_and_handle(cs, data, len);
}

static void add_real(json_t *o, const char *key, double v)
{
	json_object_set_new(o, key, json_real(v));
}

/* The request body (malloc'd), or NULL when out of memory. */
static char *chat_body(const struct remote *r, const struct remote_request *q)
{
	json_t *o = json_object();
	json_t *msgs = json_array();
	static const char *const roles[] = { "system", "user", "assistant" };
	for (int i = 0; i < q->n_messages; i++) {
		struct strbuf t = STRBUF_INIT;
		const char *text = q->messages[i].text ? q->messages[i].text : "";
		remote_utf8_clean(text, strlen(text), &t);
		json_t *m = json_object();
		unsigned role = (unsigned)q->messages[i].role;
		json_object_set_new(m, "role", json_string(roles[role < 3 ? role : 1]));
		json_object_set_new(m, "content", json_stringn(t.buf, t.len));
		json_array_append_new(msgs, m);
		strbuf_release(&t);
	}
	if (r->model)
		json_object_set_new(o, "model", json_string(r->model));
	json_object_set_new(o, "messages", msgs);
	json_object_set_new(o, "stream", json_true());
	json_t *so = json_object();
	json_object_set_new(so, "include_usage", json_true());
	json_object_set_new(o, "stream_options", so);
	const struct engine_sampling *s = q->sampling;
	if (s) {
		/* the OpenAI fields, and the two that llama-server, vLLM and
		 * ollama all read; a filter that is off is not sent */
		add_real(o, "temperature", s->temperature);
		if (s->top_p < 1)
			add_real(o, "top_p", s->top_p);
		if (s->top_k > 0)
			json_object_set_new(o, "top_k", json_integer(s->top_k));
		if (s->min_p > 0)
			add_real(o, "min_p", s->min_p);
		if (s->presence_penalty != 0)
			add_real(o, "presence_penalty", s->presence_penalty);
		if (s->frequency_penalty != 0)
			add_real(o, "frequency_penalty", s->frequency_penalty);
		/* servers read the seed as a 32-bit number */
		json_object_set_new(o, "seed", json_integer((json_int_t)(s->seed & 0x7fffffff)));
	}
	if (q->max_tokens > 0)
		json_object_set_new(o, "max_tokens", json_integer(q->max_tokens));
	static const char *const efforts[] = { NULL, "low", "medium", "high" };
	const char *effort = (unsigned)q->effort <= ENGINE_EFFORT_HIGH ? efforts[q->effort] : NULL;
	if (q->think != ENGINE_THINK_DEFAULT || effort) {
		/* llama-server and vLLM pass these to the model's template */
		json_t *kw = json_object();
		if (q->think != ENGINE_THINK_DEFAULT)
			json_object_set_new(kw, "enable_thinking",
					    json_boolean(q->think == ENGINE_THINK_ON));
		if (effort)
			json_object_set_new(kw, "reasoning_effort", json_string(effort));
		json_object_set_new(o, "chat_template_kwargs", kw);
	}
	if (effort) /* OpenAI's own parameter, which vLLM reads too */
		json_object_set_new(o, "reasoning_effort", json_string(effort));
	if (q->n_stop > 0) {
		json_t *st = json_array();
		for (int i = 0; i < q->n_stop; i++) {
			struct strbuf t = STRBUF_INIT;
			remote_utf8_clean(q->stop[i], strlen(q->stop[i]), &t);
			json_array_append_new(st, json_stringn(t.buf, t.len));
			strbuf_release(&t);
		}
		json_object_set_new(o, "stop", st);
	}
	char *body = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
	json_decref(o);
	return body; /* NULL: out of memory */
}

static int retryable(const struct xfer *x)
{
	switch (x->result) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE: return 1;
	case CURLE_OK:
	case CURLE_WRITE_ERROR:
		return x->status == 429 || x->status == 502 || x->status == 503 || x->status == 504;
	default: return 0;
	}
}

/* Sleep ms in slices; 0, or -1 when cancelled. */
static int pause_ms(struct remote *r, double ms)
{
	double until = time_now_ms() + ms;
	while (time_now_ms() < until) {
		if (cancelled(r))
			return -1;
		double left = until - time_now_ms();
		int slice = left < REMOTE_SLICE_MS ? (int)left + 1 : REMOTE_SLICE_MS;
		curl_multi_poll(r->multi, NULL, 0, slice, NULL);
	}
	return cancelled(r) ? -1 : 0;
}

static void set_failure(struct remote_result *res, struct strbuf *msg)
{
	res->stop = ENGINE_STOP_ERROR;
	free(res->message);
	res->message = strbuf_detach(msg, NULL);
}

/* One attempt: 1 when it may be tried again (nothing shown, a transient
 * failure); 0 when res says how the reply ended. */
static int attempt(struct remote *r, const char *url, const char *body,
		   const struct remote_request *q, struct chat_state *cs)
{
	struct remote_result *res = cs->res;
	struct xfer x;
	struct curl_slist *hdr = NULL;
	struct strbuf msg = STRBUF_INIT;
	int again = 0;

	memset(&x, 0, sizeof(x));
	prepare(r, &x, url, body, &hdr);
	x.cs = cs;
	x.deadline = q->deadline;
	cs->done = 0;
	strbuf_reset(&cs->fail);
	res->attempts++;
	enum xfer_end end = perform(r, &x);
	int shown = res->chunks > 0;

	if (x.mode == 2 && x.status == 200 && end == END_CURL && x.result == CURLE_OK &&
	    !x.too_big) {
		/* a server that ignored "stream": the whole completion at once */
		if (strstr(x.content_type, "json")) {
			if (parse_and_handle(cs, x.body.buf, x.body.len) == HANDLER_FAIL) {
				set_failure(res, &cs->fail);
			} else if (!cs->done) {
				cs->done = 1;
				res->stop = ENGINE_STOP_EOS;
			}
		} else {
			strbuf_addf(&msg,
				    "'%s' did not answer as an OpenAI-compatible server (content "
				    "type '%s')",
				    r->display, x.content_type[0] ? x.content_type : "none");
			set_failure(res, &msg);
		}
	} else if (end == END_CANCEL) {
		res->stop = ENGINE_STOP_CANCELLED;
	} else if (end == END_DEADLINE) {
		res->stop = ENGINE_STOP_TIMEOUT;
	} else if (end == END_IDLE) {
		if (shown)
			strbuf_addf(&msg, "'%s' went silent for %g s mid-reply (remote.timeout)",
				    r->display, r->timeout);
		else
			strbuf_addf(&msg, "no answer from '%s' in %g s (remote.timeout)",
				    r->display, r->timeout);
		set_failure(res, &msg);
	} else if (end == END_HANDLER) {
		if (x.handler_rc == HANDLER_FAIL) {
			set_failure(res, &cs->fail);
		} else if (x.handler_rc == HANDLER_STOP) {
			res->stop =
				cs->client_stop ? ENGINE_STOP_STOP_STRING : ENGINE_STOP_CANCELLED;
		} else if (x.handler_rc == HANDLER_DONE) {
			if (res->stop == ENGINE_STOP_NONE)
				res->stop = ENGINE_STOP_EOS;
		} else {
			/* the SSE parser refused the bytes: a limit */
			strbuf_addf(&msg, "malformed stream from '%s': %s", r->display,
				    error_message());
			error_clear();
			set_failure(res, &msg);
		}
	} else if (x.too_big) {
		strbuf_addf(&msg, "the answer of '%s' (HTTP %ld) is larger than %u bytes",
			    r->display, x.status, BODY_MAX);
		set_failure(res, &msg);
	} else if (x.result != CURLE_OK) {
		again = !shown && retryable(&x);
		network_message(r, &x, shown, &msg);
		set_failure(res, &msg);
	} else if (x.status != 200) {
		again = !shown && retryable(&x);
		http_message(r, &x, "/chat/completions", &msg);
		set_failure(res, &msg);
	} else {
		/* the server closed the stream */
		int rc = x.mode == 1 ? sse_finish(&x.sse) : 0;
		if (rc == HANDLER_FAIL) {
			set_failure(res, &cs->fail);
		} else if (rc == HANDLER_STOP && cs->client_stop) {
			res->stop = ENGINE_STOP_STOP_STRING;
		} else if (!cs->done) {
			if (x.mode == 1 && !x.sse.events && x.received)
				strbuf_addf(
					&msg,
					"malformed stream from '%s': %zu bytes without an event",
					r->display, x.received);
			else
				strbuf_addf(
					&msg,
					"the stream from '%s' ended before the reply was complete",
					r->display);
			again = !shown;
			set_failure(res, &msg);
		} else if (res->stop == ENGINE_STOP_NONE) {
			res->stop = ENGINE_STOP_EOS;
		}
	}
	if (again) {
		/* the pause before the next try honours the server's Retry-After */
		double wait = x.retry_after > 0
				      ? x.retry_after * 1000.0
				      : RETRY_PAUSE_MS * (double)(1 << (res->attempts - 1));
		if (wait > RETRY_PAUSE_MAX_MS)
			wait = RETRY_PAUSE_MAX_MS;
		if (res->attempts > r->retries || pause_ms(r, wait) < 0)
			again = 0;
	}
	curl_slist_free_all(hdr);
	xfer_release(&x);
	strbuf_release(&msg);
	return again;
}

int remote_chat(struct remote *r, const struct remote_request *q, remote_text_fn fn, void *ud,
		struct remote_result *res)
{
	struct chat_state cs = { 0 };
	struct strbuf url = STRBUF_INIT;

	memset(res, 0, sizeof(*res));
	res->stop = ENGINE_STOP_NONE;
	cs.r = r;
	cs.fn = fn;
	cs.ud = ud;
	cs.res = res;
	strbuf_init(&cs.fail, 0);
	strbuf_init(&cs.clean, 0);
	strbuf_addf(&url, "%s/chat/completions", r->base);
	char *body = chat_body(r, q);
	if (!body) {
		res->stop = ENGINE_STOP_ERROR;
		res->message = xstrdup("out of memory for the request");
		strbuf_release(&url);
		strbuf_release(&cs.fail);
		strbuf_release(&cs.clean);
		return 0;
	}
	while (attempt(r, url.buf, body, q, &cs)) {
		/* a failed try that is tried again leaves no trace but the count */
		free(res->message);
		res->message = NULL;
		res->stop = ENGINE_STOP_NONE;
	}
	if (res->stop == ENGINE_STOP_ERROR && cancelled(r)) {
		free(res->message);
		res->message = NULL;
		res->stop = ENGINE_STOP_CANCELLED;
	}
	free(body);
	strbuf_release(&url);
	strbuf_release(&cs.fail);
	strbuf_release(&cs.clean);
	return 0;
}
