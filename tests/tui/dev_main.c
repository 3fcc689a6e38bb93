/* A main() for hand-driving the chat against tests/tui/fake_engine.c (see build-dev.sh). */
#include "config.h"
#include "modes.h"

#include <string.h>

int main(int argc, char **argv)
{
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.ui_status_pane = 1;
	cfg.sampling.top_p = 1;
	cfg.sampling.max_tokens = -1;
	if (argc > 1)
		cfg.model = argv[1];
	return chat_run(&cfg);
}
