/* palaver inspect: not built yet (issue 3). */
#include "commands.h"
#include "report.h"

#include <stdio.h>

int cmd_inspect(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: 'inspect' is not built yet\n");
	return EXIT_RUNTIME;
}
