/* palaver tokenize: not built yet (issue 4). */
#include "commands.h"
#include "report.h"

#include <stdio.h>

int cmd_tokenize(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: 'tokenize' is not built yet\n");
	return EXIT_RUNTIME;
}
