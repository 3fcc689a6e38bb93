/* the chat: not built yet (issue 8). */
#include "modes.h"
#include "report.h"

#include <stdio.h>

int chat_run(struct config *cfg)
{
	(void)cfg;
	fprintf(stderr, "palaver: the chat is not built yet\n");
	return EXIT_RUNTIME;
}
