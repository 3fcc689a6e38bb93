/* batch mode: not built yet (issue 6). */
#include "modes.h"
#include "report.h"

#include <stdio.h>

int batch_run(struct config *cfg)
{
	(void)cfg;
	fprintf(stderr, "palaver: batch mode is not built yet\n");
	return EXIT_RUNTIME;
}
