/* palaver bench: dispatch to the model, cold-start, tokenizer, history or engine benchmark. */
#include "bench.h"
#include "commands.h"

#include <string.h>

int cmd_bench(int argc, char **argv, struct config *cfg)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--tokenizer"))
			return bench_tokenizer(argc, argv, cfg);
		if (!strcmp(argv[i], "--history"))
			return bench_history(argc, argv, cfg);
		if (!strcmp(argv[i], "--cold"))
			return bench_cold(argc, argv, cfg);
		if (!strcmp(argv[i], "--kernels"))
			return bench_kernels(argc, argv, cfg);
		if (!strcmp(argv[i], "--cancel") || !strcmp(argv[i], "--reuse"))
			return bench_engine(argc, argv, cfg);
	}
	return bench_model(argc, argv, cfg);
}
