/* palaver bench (history): not built yet (issue 7). */
#include "bench.h"
#include "report.h"

#include <stdio.h>

int bench_history(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: the history benchmark is not built yet\n");
	return EXIT_RUNTIME;
}
