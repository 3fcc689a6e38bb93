/* The two ways palaver talks: the full-screen chat and the batch tool. */
#ifndef PALAVER_MODES_H
#define PALAVER_MODES_H

struct config;

int chat_run(struct config *cfg);  /* app/chat.c: the TUI (stdin and stdout are a terminal) */
int batch_run(struct config *cfg); /* app/batch.c: stdin to stdout, or -p TEXT */

#endif
