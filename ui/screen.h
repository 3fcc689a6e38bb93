/* The curses screen: start and restore the terminal, windows per pane, resize, signals. */
#ifndef PALAVER_SCREEN_H
#define PALAVER_SCREEN_H

#include <stddef.h>
#include "layout.h"

struct _win_st;

struct screen {
	struct layout lay;
	struct _win_st *transcript, *status, *rule, *input, *hint; /* NULL when hidden */
	int status_enabled; /* the user wants the status pane */
	int input_rows;     /* rows the input asked for at the last layout */
	int mouse;          /* mouse wheel reporting is on */
	int bad_theme;      /* the theme asked for is unknown (the default is used) */
};

/*
 * Start curses on the terminal: alternate screen, raw mode, no echo,
 * bracketed paste and mouse wheel reporting; restore handlers for die(),
 * SIGTERM/SIGHUP/SIGINT (reported through screen_signal_fd), SIGWINCH, and
 * the crash signals (which restore the terminal, then re-raise).
 * Returns 0 or -1 (error()).
 */
int screen_open(struct screen *s, const char *theme, int status_pane, int mouse);
/* Restore the terminal.  Safe to call twice. */
void screen_close(struct screen *s);

/* Read end of the self-pipe that signal handlers write to. */
int screen_signal_fd(void);
/* The next signal that arrived (SIGWINCH, SIGTERM, ...), or 0. */
int screen_take_signal(void);

/* Re-read the terminal size (after SIGWINCH) and relayout. */
void screen_resize(struct screen *s);
/* Recompute the layout for an input of `input_rows`; recreates the windows
 * when anything moved.  Returns 1 when it did (everything must redraw). */
int screen_relayout(struct screen *s, int input_rows);

/* Ctrl-Z: give the terminal back, stop the process (SIGTSTP), and take the
 * terminal again when continued.  The caller redraws everything. */
void screen_suspend(struct screen *s);

/* Write raw bytes to the terminal (OSC 52 and such), outside curses. */
void screen_write_raw(const char *s, size_t n);

#endif
