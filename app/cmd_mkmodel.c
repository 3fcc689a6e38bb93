/* palaver mkmodel: not built yet (issue 3). */
#include "commands.h"
#include "report.h"

#include <stdio.h>

int cmd_mkmodel(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: 'mkmodel' is not built yet\n");
	return EXIT_RUNTIME;
}
