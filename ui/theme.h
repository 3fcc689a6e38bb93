/* Colours and attributes for every styled thing on screen, with a monochrome fallback. */
#ifndef PALAVER_THEME_H
#define PALAVER_THEME_H

enum theme_slot {
	TH_TEXT,
	TH_USER,      /* the "you" label */
	TH_ASSISTANT, /* the model's label */
	TH_SYSTEM,
	TH_NOTICE, /* messages from palaver itself */
	TH_ERROR,
	TH_BOLD,
	TH_CODE,
	TH_CODEBLOCK,
	TH_FENCE,
	TH_HEADING,
	TH_BULLET,
	TH_QUOTE,
	TH_STOPPED, /* the "stopped" mark under a cancelled reply */
	TH_S_VALUE,
	TH_S_LABEL,
	TH_S_TITLE,
	TH_S_OK,
	TH_S_WARN,
	TH_S_BAD,
	TH_S_BAR,
	TH_RULE, /* separators */
	TH_HINT,
	TH_INDICATOR, /* "new text below" */
	TH_SELECTED,  /* picker selection */
	TH_MATCH,     /* search hit */
	TH_PROMPT,
	TH_THINKING, /* a reply's thinking, and its "thinking..." line */
	TH_ITALIC,
	TH_LINK, /* a link's text */
	TH_URL,  /* its address; table borders */
	TH_COUNT,
};

/* Whether to use colours: not for theme "mono", nor when NO_COLOR is set
 * (and not empty), nor when the terminal has none.  Pure, for tests. */
int theme_wants_color(const char *theme, const char *no_color_env, int terminal_has_colors);
/* Set up colour pairs (after initscr); `theme` may be NULL ("default").
 * Returns 0, or -1 for an unknown theme name (the default is used). */
int theme_init(const char *theme);
/* The curses attribute (colour pair included) for a slot. */
unsigned long theme_attr(enum theme_slot slot);
/* Names of the built-in themes, NULL-terminated. */
extern const char *const theme_names[];

#endif
