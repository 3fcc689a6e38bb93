/* palaver bench (engine): not built yet (issue 6). */
#include "bench.h"
#include "report.h"

#include <stdio.h>

int bench_engine(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: the engine benchmark is not built yet\n");
	return EXIT_RUNTIME;
}
