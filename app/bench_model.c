/* palaver bench (model): not built yet (issue 5). */
#include "bench.h"
#include "report.h"

#include <stdio.h>

int bench_model(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: the model benchmark is not built yet\n");
	return EXIT_RUNTIME;
}
