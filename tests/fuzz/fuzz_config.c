/* libFuzzer target for config.yaml through palaver's own loader: any text applies or is refused with one FILE:LINE:COL line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "report.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	config_init(&cfg);
	error_clear();
	if (config_load_text(&cfg, "fuzz.yaml", (const char *)data, size) < 0) {
		const char *m = error_message();
		if (!*m || strchr(m, '\n'))
			abort(); /* one line that says where and why */
	} else {
		/* what was applied can be printed, origins and all */
		struct strbuf sb = STRBUF_INIT;
		config_print(&cfg, &sb, 1);
		strbuf_release(&sb);
	}
	config_free(&cfg);
	return 0;
}
