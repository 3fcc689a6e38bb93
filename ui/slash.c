/* Slash command table, parsing, completion and suggestions (pure, unit-tested). */
#include "slash.h"
#include "xalloc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const struct slash_command slash_commands[SLASH_COUNT] = {
	{ SLASH_CLEAR, "clear", "", "clear the screen (the conversation goes on)", 0, 2 },
	{ SLASH_COPY, "copy", "", "copy the last reply to the clipboard (OSC 52)", 0, 2 },
	{ SLASH_DELETE, "delete", "", "delete this session", 1, 1 },
	{ SLASH_EDIT, "edit", "", "put your last message back in the input to resend", 1, 0 },
	{ SLASH_EXPORT, "export", "[FILE]", "write this session as Markdown", 0, 1 },
	{ SLASH_HELP, "help", "", "list commands and keys", 0, 0 },
	{ SLASH_MODEL, "model", "[FILE]", "show the model, or load another GGUF file", 1, 0 },
	{ SLASH_NEW, "new", "[TITLE]", "start a new session", 1, 0 },
	{ SLASH_OPEN, "open", "ID", "open a saved session", 1, 1 },
	{ SLASH_QUIT, "quit", "", "leave palaver (also Ctrl-D)", 0, 0 },
	{ SLASH_REGEN, "regen", "", "regenerate the last reply", 1, 0 },
	{ SLASH_RENAME, "rename", "TITLE", "rename this session", 0, 1 },
	{ SLASH_SEARCH, "search", "QUERY", "search all sessions", 1, 1 },
	{ SLASH_SESSIONS, "sessions", "", "pick a saved session (d deletes, / filters)", 1, 1 },
	{ SLASH_SET, "set", "[KEY VALUE]", "show or change sampling settings", 0, 0 },
	{ SLASH_STATS, "stats", "", "show the figures of the last reply", 0, 2 },
	{ SLASH_SYSTEM, "system", "[TEXT]", "show or set the system prompt", 0, 0 },
	{ SLASH_THINK, "think", "[on|off|auto|show|hide|collapse]",
	  "thinking: switch it, or how it shows", 0, 0 },
};

static const struct slash_command *find(const char *name, size_t n)
{
	for (int i = 0; i < SLASH_COUNT; i++)
		if (strlen(slash_commands[i].name) == n &&
		    !strncmp(slash_commands[i].name, name, n))
			return &slash_commands[i];
	return NULL;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

const struct slash_command *slash_parse(const char *line, const char **args, char **unknown)
{
	*unknown = NULL;
	*args = "";
	if (line[0] != '/' || line[1] == '/' || line[1] == '\0' || is_space(line[1]))
		return NULL;
	const char *name = line + 1;
	size_t n = 0;
	while (name[n] && !is_space(name[n]))
		n++;
	const struct slash_command *c = find(name, n);
	if (!c) {
		*unknown = xstrndup(name, n);
		return NULL;
	}
	const char *a = name + n;
	while (is_space(*a))
		a++;
	*args = a;
	return c;
}

int slash_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 32 || lb > 32)
		return 99;
	int row[33];
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int diag = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int up = row[j];
			int best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *slash_suggest(const char *name)
{
	const char *best = NULL, *prefix = NULL;
	int best_d = 3, n_prefix = 0;
	size_t n = strlen(name);
	if (!n)
		return NULL;
	for (int i = 0; i < SLASH_COUNT; i++) {
		const char *c = slash_commands[i].name;
		if (!strncmp(c, name, n)) {
			prefix = c;
			n_prefix++;
		}
		int d = slash_distance(name, c);
		if (d < best_d) {
			best_d = d;
			best = c;
		}
	}
	if (n_prefix == 1)
		return prefix;
	/* one-letter names are too short to guess from */
	if (best && best_d >= (int)n)
		return NULL;
	return best;
}

static size_t common_prefix(const char *const *v, int n)
{
	if (n <= 0)
		return 0;
	size_t len = strlen(v[0]);
	for (int i = 1; i < n; i++) {
		size_t k = 0;
		while (k < len && v[i][k] && v[i][k] == v[0][k])
			k++;
		len = k;
	}
	return len;
}

int slash_complete(const char *line, const char *const *set_keys, const char **out, int max,
		   size_t *word_start, size_t *common)
{
	int n = 0;
	*word_start = 0;
	*common = 0;
	if (line[0] != '/' || strchr(line, '\n'))
		return 0;
	const char *sp = strchr(line, ' ');
	if (!sp) {
		size_t len = strlen(line + 1);
		for (int i = 0; i < SLASH_COUNT && n < max; i++)
			if (!strncmp(slash_commands[i].name, line + 1, len))
				out[n++] = slash_commands[i].name;
		*word_start = 1;
	} else if (set_keys && sp - line == 4 && !strncmp(line, "/set", 4)) {
		/* the key of /set KEY VALUE */
		const char *w = sp + 1;
		while (*w == ' ')
			w++;
		if (strchr(w, ' '))
			return 0;
		size_t len = strlen(w);
		for (int i = 0; set_keys[i] && n < max; i++)
			if (!strncmp(set_keys[i], w, len))
				out[n++] = set_keys[i];
		*word_start = (size_t)(w - line);
	} else {
		return 0;
	}
	*common = common_prefix(out, n);
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

int slash_complete_files(const char *line, char **out, int max, size_t *word_start, size_t *common)
{
	static const char *const cmds[] = { "/model ", "/export ", NULL };
	const char *word = NULL, *home = getenv("HOME");
	int n = 0, gguf_only = 0;

	*word_start = 0;
	*common = 0;
	for (int i = 0; cmds[i] && !word; i++)
		if (!strncmp(line, cmds[i], strlen(cmds[i]))) {
			word = line + strlen(cmds[i]);
			gguf_only = i == 0;
		}
	if (!word || strchr(line, '\n'))
		return 0;
	while (*word == ' ')
		word++;
	/* the folder to list: the word up to its last '/', with ~/ expanded */
	const char *slash = strrchr(word, '/');
	size_t dir_len = slash ? (size_t)(slash - word) + 1 : 0;
	const char *base = word + dir_len;
	char *dir;
	if (!dir_len) {
		dir = xstrdup(".");
	} else if (word[0] == '~' && word[1] == '/' && home) {
		dir = xmalloc(strlen(home) + dir_len);
		strcpy(dir, home);
		strncat(dir, word + 1, dir_len - 1);
	} else {
		dir = xstrndup(word, dir_len);
	}
	DIR *d = opendir(dir);
	if (!d) {
		free(dir);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		struct stat st;
		char *full, *cand;
		if (strncmp(e->d_name, base, strlen(base)) || !strcmp(e->d_name, ".") ||
		    !strcmp(e->d_name, "..") || (e->d_name[0] == '.' && base[0] != '.'))
			continue;
		full = xmalloc(strlen(dir) + strlen(e->d_name) + 2);
		sprintf(full, "%s%s%s", dir, has_suffix(dir, "/") ? "" : "/", e->d_name);
		int is_dir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
		free(full);
		if (!is_dir && gguf_only && !has_suffix(e->d_name, ".gguf"))
			continue;
		cand = xmalloc(dir_len + strlen(e->d_name) + 2);
		memcpy(cand, word, dir_len);
		strcpy(cand + dir_len, e->d_name);
		if (is_dir)
			strcat(cand, "/");
		out[n++] = cand;
	}
	closedir(d);
	free(dir);
	qsort(out, (size_t)n, sizeof(*out), cmp_str);
	*word_start = (size_t)(word - line);
	*common = common_prefix((const char *const *)out, n);
	return n;
}
