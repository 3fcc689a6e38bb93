/* Themes: a colour and attribute per slot, and the monochrome fallback. */
#include "theme.h"

#include <curses.h>
#include <stdlib.h>
#include <string.h>

const char *const theme_names[] = { "default", "mono", "light", NULL };

static attr_t attrs[TH_COUNT];

struct slot_style {
	short fg, bg; /* -1 = terminal default */
	attr_t attr;  /* added to the colour */
	attr_t mono;  /* used instead when there are no colours */
};

/* dark-background defaults */
static const struct slot_style dark[TH_COUNT] = {
	[TH_TEXT] = { -1, -1, 0, 0 },
	[TH_USER] = { COLOR_CYAN, -1, A_BOLD, A_BOLD },
	[TH_ASSISTANT] = { COLOR_GREEN, -1, A_BOLD, A_BOLD | A_UNDERLINE },
	[TH_SYSTEM] = { COLOR_MAGENTA, -1, A_BOLD, A_BOLD },
	[TH_NOTICE] = { COLOR_YELLOW, -1, 0, A_DIM },
	[TH_ERROR] = { COLOR_RED, -1, A_BOLD, A_BOLD | A_REVERSE },
	[TH_BOLD] = { -1, -1, A_BOLD, A_BOLD },
	[TH_CODE] = { COLOR_YELLOW, -1, 0, A_UNDERLINE },
	[TH_CODEBLOCK] = { COLOR_WHITE, COLOR_BLACK, 0, 0 },
	[TH_FENCE] = { COLOR_BLUE, -1, 0, A_DIM },
	[TH_HEADING] = { COLOR_MAGENTA, -1, A_BOLD, A_BOLD | A_UNDERLINE },
	[TH_BULLET] = { COLOR_CYAN, -1, 0, A_BOLD },
	[TH_QUOTE] = { COLOR_BLUE, -1, 0, A_DIM },
	[TH_STOPPED] = { COLOR_YELLOW, -1, 0, A_DIM | A_REVERSE },
	[TH_S_VALUE] = { -1, -1, 0, 0 },
	[TH_S_LABEL] = { COLOR_BLUE, -1, 0, A_DIM },
	[TH_S_TITLE] = { COLOR_GREEN, -1, A_BOLD, A_BOLD },
	[TH_S_OK] = { COLOR_GREEN, -1, 0, 0 },
	[TH_S_WARN] = { COLOR_YELLOW, -1, A_BOLD, A_BOLD },
	[TH_S_BAD] = { COLOR_RED, -1, A_BOLD, A_BOLD | A_REVERSE },
	[TH_S_BAR] = { COLOR_CYAN, -1, 0, 0 },
	[TH_RULE] = { COLOR_BLUE, -1, 0, A_DIM },
	[TH_HINT] = { COLOR_BLUE, -1, 0, A_DIM },
	[TH_INDICATOR] = { COLOR_BLACK, COLOR_YELLOW, 0, A_REVERSE },
	[TH_SELECTED] = { COLOR_BLACK, COLOR_CYAN, 0, A_REVERSE },
	[TH_MATCH] = { COLOR_BLACK, COLOR_YELLOW, 0, A_REVERSE | A_BOLD },
	[TH_PROMPT] = { COLOR_CYAN, -1, A_BOLD, A_BOLD },
	[TH_THINKING] = { -1, -1, A_DIM, A_DIM },
	[TH_ITALIC] = { -1, -1, A_ITALIC, A_ITALIC },
	[TH_LINK] = { COLOR_CYAN, -1, A_UNDERLINE, A_UNDERLINE },
	[TH_URL] = { COLOR_BLUE, -1, 0, A_DIM },
};

int theme_wants_color(const char *theme, const char *no_color_env, int terminal_has_colors)
{
	if (theme && !strcmp(theme, "mono"))
		return 0;
	if (no_color_env && *no_color_env)
		return 0;
	return terminal_has_colors;
}

int theme_init(const char *theme)
{
	int known = !theme || !*theme;
	for (int i = 0; theme_names[i]; i++)
		if (theme && !strcmp(theme, theme_names[i]))
			known = 1;
	int color = theme_wants_color(theme, getenv("NO_COLOR"), has_colors());
	int light = theme && !strcmp(theme, "light");

	if (color) {
		start_color();
		use_default_colors();
	}
	for (int i = 0; i < TH_COUNT; i++) {
		struct slot_style st = dark[i];
		if (!color) {
			attrs[i] = st.mono;
			continue;
		}
		if (light) {
			/* on a light background: dark text, yellow is unreadable */
			if (st.fg == COLOR_YELLOW && st.bg == -1)
				st.fg = COLOR_RED;
			if (i == TH_CODEBLOCK)
				st.fg = COLOR_BLACK, st.bg = COLOR_WHITE;
		}
		if (st.fg == -1 && st.bg == -1) {
			attrs[i] = st.attr;
			continue;
		}
		if (i + 1 >= COLOR_PAIRS) {
			attrs[i] = st.mono;
			continue;
		}
		init_pair((short)(i + 1), st.fg, st.bg);
		attrs[i] = COLOR_PAIR(i + 1) | st.attr;
	}
	return known ? 0 : -1;
}

unsigned long theme_attr(enum theme_slot slot)
{
	return (unsigned long)attrs[slot];
}
