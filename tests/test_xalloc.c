/* lib/xalloc: out of memory restores the terminal (the die hook) before aborting; checked sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"
#include "xalloc.h"

#if defined(__SANITIZE_ADDRESS__)
/* Under ASan a failed malloc returns NULL, as it does without it, instead
 * of ASan's own report: this binary tests what palaver does then. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#endif

static int hook_fd = -1;

static void hook(void)
{
	char c = 'H';
	if (write(hook_fd, &c, 1) != 1)
		_exit(3);
}

/* In a child: an allocation no machine can satisfy.  The parent sees the
 * hook's byte, then the child's SIGABRT. */
static void test_oom_runs_the_die_hook(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		hook_fd = fds[1];
		set_die_hook(hook);
		void *volatile p = xmalloc(SIZE_MAX / 2);
		(void)p;
		_exit(0); /* not reached */
	}
	close(fds[1]);
	char c = 0;
	assert_int_equal(read(fds[0], &c, 1), 1);
	assert_int_equal(c, 'H');
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* The hook runs once even when something fatal happens inside it. */
static int hook_runs;
static void counting_hook(void)
{
	hook_runs++;
	run_die_hook();
}

static void test_hook_runs_once(void **state)
{
	(void)state;
	set_die_hook(counting_hook);
	run_die_hook();
	run_die_hook();
	assert_int_equal(hook_runs, 1);
}

static void test_checked_sizes(void **state)
{
	(void)state;
	size_t n;
	assert_null(try_alloc_array(SIZE_MAX / 2, 4)); /* the product overflows */
	assert_int_equal(size_mul(SIZE_MAX / 2, 4, &n), -1);
	assert_int_equal(size_add(SIZE_MAX, 1, &n), -1);
	void *p = try_alloc_array(16, 16);
	assert_non_null(p);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oom_runs_the_die_hook),
		cmocka_unit_test(test_hook_runs_once),
		cmocka_unit_test(test_checked_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
