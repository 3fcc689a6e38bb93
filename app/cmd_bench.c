/* palaver bench: not built yet (issue 5). */
#include "commands.h"
#include "report.h"

#include <stdio.h>

int cmd_bench(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: 'bench' is not built yet\n");
	return EXIT_RUNTIME;
}
