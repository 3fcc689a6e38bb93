/* palaver bench (tokenizer): not built yet (issue 4). */
#include "bench.h"
#include "report.h"

#include <stdio.h>

int bench_tokenizer(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: the tokenizer benchmark is not built yet\n");
	return EXIT_RUNTIME;
}
