/* palaver config: not built yet (issue 2). */
#include "commands.h"
#include "report.h"

#include <stdio.h>

int cmd_config(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: 'config' is not built yet\n");
	return EXIT_RUNTIME;
}
