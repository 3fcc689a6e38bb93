/* Slash commands: the table, parsing, Tab completion and did-you-mean. */
#ifndef PALAVER_SLASH_H
#define PALAVER_SLASH_H

#include <stddef.h>

enum slash_id {
	SLASH_NEW,
	SLASH_SESSIONS,
	SLASH_OPEN,
	SLASH_RENAME,
	SLASH_DELETE,
	SLASH_SEARCH,
	SLASH_EXPORT,
	SLASH_SYSTEM,
	SLASH_SET,
	SLASH_REGEN,
	SLASH_EDIT,
	SLASH_COPY,
	SLASH_STATS,
	SLASH_MODEL,
	SLASH_CLEAR,
	SLASH_HELP,
	SLASH_QUIT,
	SLASH_THINK,
	SLASH_COUNT,
};

struct slash_command {
	enum slash_id id;
	const char *name; /* without the slash */
	const char *args; /* usage of the arguments, "" for none */
	const char *help; /* one line for /help */
	int idle;         /* 1: refused while a reply streams (the input keeps the line) */
	int group;        /* /help's section: 0 the common ones, 1 sessions, 2 the rest */
};

extern const struct slash_command slash_commands[]; /* SLASH_COUNT entries, sorted by name */

/*
 * Parse a submitted line.  Returns:
 *   the command (args set to the trimmed arguments, "" when none),
 *   NULL with *unknown set to the malloc'd name of an unknown command,
 *   NULL with *unknown NULL when the line is not a command (no leading
 *   '/', or "//text" which sends "/text" as a message: see slash_unescape).
 */
const struct slash_command *slash_parse(const char *line, const char **args, char **unknown);
/* The closest command name to `name` (edit distance <= 2 or a unique
 * prefix), or NULL. */
const char *slash_suggest(const char *name);

/*
 * Tab completion of the input line.  `words` (NULL-terminated, may be NULL)
 * are the candidates for the first argument of /set.  Fills *out with the
 * candidates (pointers to static or `words` strings, at most max) and
 * returns their number; *common gets the longest common prefix length of
 * the candidates (in bytes, of the word being completed) and *word_start
 * where that word begins in line.  0 when the line does not complete.
 */
int slash_complete(const char *line, const char *const *set_keys, const char **out, int max,
		   size_t *word_start, size_t *common);

/*
 * Tab completion of a file name: the argument of /model (GGUF files and
 * folders) and of /export (any file).  Fills out with malloc'd candidates,
 * each the whole argument (its folder part kept, "~/" too; folders end in
 * '/'), sorted, at most max; hidden files only when the name typed starts
 * with '.'.  *word_start and *common as for slash_complete.  Returns their
 * number, 0 when the line is no such command or nothing matches.
 */
int slash_complete_files(const char *line, char **out, int max, size_t *word_start, size_t *common);

/* Edit distance (Levenshtein), for suggestions. */
int slash_distance(const char *a, const char *b);

#endif
