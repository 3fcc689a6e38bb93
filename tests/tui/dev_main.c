/* A main() for hand-driving the chat against tests/tui/fake_engine.c (see build-dev.sh).
 * Understands -m FILE and --history FILE; other options are ignored. */
#include "config.h"
#include "modes.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct config cfg;
	config_init(&cfg);
	config_finish(&cfg);
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "-m")) {
			free(cfg.model);
			cfg.model = strdup(argv[++i]);
		} else if (!strcmp(argv[i], "--history")) {
			free(cfg.history_path);
			cfg.history_path = strdup(argv[++i]);
			cfg.history_enabled = 1;
		}
	}
	int rc = chat_run(&cfg);
	config_free(&cfg);
	return rc;
}
