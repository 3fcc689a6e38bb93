/* ui/status_pane: bars, sparkline, number formats and the pane's lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <locale.h>
#include <string.h>

#include "status_pane.h"
#include "wrap.h"

static int setup(void **state)
{
	(void)state;
	return setlocale(LC_CTYPE, "C.UTF-8") ? 0 : -1;
}

static void test_progress_bar(void **state)
{
	char buf[256];
	(void)state;
	status_progress_bar(0.5, 10, buf, sizeof(buf));
	assert_int_equal(wrap_width(buf, strlen(buf)), 10);
	assert_string_equal(buf, "\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88"
				 "\xe2\x96\x91\xe2\x96\x91\xe2\x96\x91\xe2\x96\x91\xe2\x96\x91");
	status_progress_bar(0.0, 4, buf, sizeof(buf));
	assert_string_equal(buf, "\xe2\x96\x91\xe2\x96\x91\xe2\x96\x91\xe2\x96\x91");
	status_progress_bar(7.0, 4, buf, sizeof(buf)); /* clamped */
	assert_string_equal(buf, "\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88");
	status_progress_bar(1.0 / 16, 2, buf, sizeof(buf)); /* one eighth of a cell */
	assert_string_equal(buf, "\xe2\x96\x8f\xe2\x96\x91");
	/* too small a buffer: truncated, still a string */
	status_progress_bar(1.0, 10, buf, 8);
	assert_int_equal(strlen(buf), 6);
}

static void test_sparkline(void **state)
{
	char buf[256];
	float v[] = { 0, 10, 20, 40 };
	(void)state;
	status_sparkline(v, 4, 10, buf, sizeof(buf));
	assert_string_equal(buf, "\xe2\x96\x81\xe2\x96\x83\xe2\x96\x85\xe2\x96\x88"); /* ▁▃▅█ */
	status_sparkline(v, 4, 2, buf, sizeof(buf)); /* the last two */
	assert_string_equal(buf, "\xe2\x96\x85\xe2\x96\x88");
	status_sparkline(v, 0, 5, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void test_formats(void **state)
{
	char buf[32];
	(void)state;
	assert_string_equal(status_format_rate(buf, sizeof(buf), 12.345), "12.3");
	assert_string_equal(status_format_rate(buf, sizeof(buf), 1234.4), "1234");
	assert_string_equal(status_format_count(buf, sizeof(buf), 260000), "260K");
	assert_string_equal(status_format_count(buf, sizeof(buf), 1100000000ull), "1.1B");
	assert_string_equal(status_format_count(buf, sizeof(buf), 999), "999");
	assert_int_equal(status_ctx_style(10, 100), SS_OK);
	assert_int_equal(status_ctx_style(80, 100), SS_WARN);
	assert_int_equal(status_ctx_style(95, 100), SS_BAD);
	assert_int_equal(status_ctx_style(5, 0), SS_VALUE);
}

static struct status_info sample(void)
{
	struct status_info s;
	memset(&s, 0, sizeof(s));
	strcpy(s.model, "stories260K");
	strcpy(s.type, "F32");
	s.file_bytes = 1 << 20;
	s.n_params = 260000;
	strcpy(s.backend, "cpu");
	s.threads = 2;
	s.state = STATE_READY;
	s.have_stats = 1;
	s.ttft_ms = 12;
	s.prompt_tps = 1500;
	s.gen_tps = 450.5;
	s.spark[0] = 400, s.spark[1] = 450;
	s.n_spark = 2;
	s.ctx_used = 470, s.ctx_total = 512;
	s.reused = 30;
	s.rss = 20 << 20;
	strcpy(s.title, "a \xe4\xb8\x96 chat");
	return s;
}

static int find_line(const struct status_line *l, int n, const char *needle)
{
	for (int i = 0; i < n; i++)
		if (strstr(l[i].text, needle))
			return i;
	return -1;
}

static void check_spans(const struct status_line *l, int width)
{
	size_t at = 0;
	assert_true(wrap_width(l->text, l->len) <= width);
	for (int i = 0; i < l->n_spans; i++) {
		assert_int_equal(l->spans[i].start, at);
		at += l->spans[i].len;
	}
	assert_int_equal(at, l->len);
}

static void test_column(void **state)
{
	struct status_line lines[32];
	struct status_info s = sample();
	(void)state;
	int n = status_format_column(&s, 30, lines, 32);
	for (int i = 0; i < n; i++)
		check_spans(&lines[i], 30);
	assert_true(find_line(lines, n, "stories260K") >= 0);
	assert_true(find_line(lines, n, "450 t/s") >= 0);
	assert_true(find_line(lines, n, "1500 t/s") >= 0);
	int c = find_line(lines, n, "470/512");
	assert_true(c >= 0);
	/* 90 % of the context: the gauge warns */
	int bad = 0;
	for (int i = 0; i < lines[c].n_spans; i++)
		bad |= lines[c].spans[i].style == SS_BAD;
	assert_true(bad);
	assert_true(find_line(lines, n, "\xe4\xb8\x96 chat") >= 0);
	/* loading shows a percentage, prefill shows n/N */
	s.state = STATE_PREFILL, s.done = 40, s.total = 80;
	n = status_format_column(&s, 30, lines, 32);
	assert_true(find_line(lines, n, "40/80") >= 0);
	s.state = STATE_LOADING, s.done = 1, s.total = 4;
	n = status_format_column(&s, 30, lines, 32);
	assert_true(find_line(lines, n, "25%") >= 0);
	/* a short pane is cut, never overrun */
	assert_int_equal(status_format_column(&s, 30, lines, 3), 3);
	/* narrow columns stay within their width */
	n = status_format_column(&s, 12, lines, 32);
	for (int i = 0; i < n; i++)
		check_spans(&lines[i], 12);
}

static void test_bar(void **state)
{
	struct status_line lines[2];
	struct status_info s = sample();
	(void)state;
	status_format_bar(&s, 60, 2, lines);
	check_spans(&lines[0], 60);
	check_spans(&lines[1], 60);
	assert_non_null(strstr(lines[0].text, "stories260K"));
	assert_true(strstr(lines[0].text, "t/s") || strstr(lines[1].text, "t/s"));
	assert_true(strstr(lines[0].text, "470/512") || strstr(lines[1].text, "470/512"));
	status_format_bar(&s, 20, 1, lines);
	check_spans(&lines[0], 20);
	s.state = STATE_NO_MODEL;
	s.model[0] = '\0';
	status_format_bar(&s, 80, 1, lines);
	assert_non_null(strstr(lines[0].text, "no model"));
}

/* A GPU: the backend and the device in place of the thread count. */
static void test_device(void **state)
{
	struct status_line lines[32];
	struct status_info s = sample();
	(void)state;
	strcpy(s.backend, "cuda");
	strcpy(s.device, "NVIDIA H100, 79.1 GiB");
	int n = status_format_column(&s, 40, lines, 32);
	for (int i = 0; i < n; i++)
		check_spans(&lines[i], 40);
	assert_true(find_line(lines, n, "cuda \xc2\xb7 NVIDIA H100, 79.1 GiB") >= 0);
	assert_int_equal(find_line(lines, n, "thread"), -1);
	s = sample();
	n = status_format_column(&s, 40, lines, 32);
	assert_true(find_line(lines, n, "cpu \xc2\xb7 2 threads") >= 0);
}

/* A remote server: its address without the scheme, the server's own speed,
 * and whose token count it is; no empty line where a file's size would be. */
static void test_remote(void **state)
{
	struct status_line lines[32];
	struct status_info s;
	(void)state;
	memset(&s, 0, sizeof(s));
	strcpy(s.model, "Qwen/Qwen2.5-7B-Instruct");
	strcpy(s.backend, "remote");
	strcpy(s.server, "http://gpu-box:8000/v1");
	s.state = STATE_READY;
	s.have_stats = 1;
	s.gen_tps = 40;
	s.server_tps = 83.2;
	s.gen_tokens = 8;
	s.server_usage = 1;
	int n = status_format_column(&s, 30, lines, 32);
	for (int i = 0; i < n; i++)
		check_spans(&lines[i], 30);
	assert_int_equal(find_line(lines, n, "Qwen/Qwen2.5-7B-Instruct"), 0);
	assert_int_equal(find_line(lines, n, "gpu-box:8000/v1"), 1);
	assert_int_equal(find_line(lines, n, "http://"), -1);
	assert_true(find_line(lines, n, "83.2 t/s") >= 0);
	assert_true(find_line(lines, n, "8 (server)") >= 0);
	/* no context reported (ollama): no gauge */
	assert_int_equal(find_line(lines, n, "context"), -1);
	s.server_usage = 0;
	s.server_tps = 0;
	n = status_format_column(&s, 30, lines, 32);
	assert_true(find_line(lines, n, "8 (chunks)") >= 0);
	assert_int_equal(find_line(lines, n, "server"), -1);
	/* a local model shows neither */
	struct status_info l = sample();
	n = status_format_column(&l, 30, lines, 32);
	assert_int_equal(find_line(lines, n, "(server)"), -1);
	assert_int_equal(find_line(lines, n, "(chunks)"), -1);
	status_format_bar(&s, 100, 2, lines);
	assert_true(strstr(lines[0].text, "http://gpu-box:8000/v1") ||
		    strstr(lines[1].text, "http://gpu-box:8000/v1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_progress_bar),
		cmocka_unit_test(test_sparkline),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_column),
		cmocka_unit_test(test_bar),
		cmocka_unit_test(test_remote),
		cmocka_unit_test(test_device),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
