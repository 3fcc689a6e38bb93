/* palaver sessions: not built yet (issue 7). */
#include "commands.h"
#include "report.h"

#include <stdio.h>

int cmd_sessions(int argc, char **argv, struct config *cfg)
{
	(void)argc;
	(void)argv;
	(void)cfg;
	fprintf(stderr, "palaver: 'sessions' is not built yet\n");
	return EXIT_RUNTIME;
}
