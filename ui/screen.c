/* Terminal set-up and restore, pane windows from the layout, signal plumbing. */
#include "screen.h"
#include "report.h"
#include "theme.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <term.h>
#include <termios.h>
#include <unistd.h>

/*
 * DESIGN
 * Signals only write their number to a self-pipe; the UI loop polls the
 * pipe with stdin and the engine, so resize and termination happen in the
 * loop, where curses may be called.  A crash signal cannot wait for the
 * loop: its handler restores the terminal with async-signal-safe calls
 * only (write(), tcsetattr()) and re-raises.
 */

#define MODES_ON_PASTE "\x1b[?2004h"
#define MODES_OFF_PASTE "\x1b[?2004l"
#define MODES_ON_MOUSE "\x1b[?1000h\x1b[?1006h"
#define MODES_OFF_MOUSE "\x1b[?1006l\x1b[?1000l"
/* leave the alternate screen, show the cursor, reset attributes */
#define EMERGENCY_RESET MODES_OFF_PASTE MODES_OFF_MOUSE "\x1b[0m\x1b[?25h\x1b[?1049l\r\n"

static int sig_pipe[2] = { -1, -1 };
static struct termios saved_tio;
static int have_saved_tio;
static volatile sig_atomic_t active;

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

void screen_write_raw(const char *s, size_t n)
{
	fflush(stdout);
	write_all(STDOUT_FILENO, s, n);
}

static void on_signal(int sig)
{
	int e = errno;
	unsigned char b = (unsigned char)sig;
	if (sig_pipe[1] >= 0)
		(void)!write(sig_pipe[1], &b, 1);
	errno = e;
}

static void on_crash(int sig)
{
	if (active) {
		active = 0;
		write_all(STDOUT_FILENO, EMERGENCY_RESET, sizeof(EMERGENCY_RESET) - 1);
		if (have_saved_tio)
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* die() runs this before printing its message. */
static void die_hook(void)
{
	if (!active)
		return;
	active = 0;
	write_all(STDOUT_FILENO, MODES_OFF_PASTE MODES_OFF_MOUSE,
		  sizeof(MODES_OFF_PASTE MODES_OFF_MOUSE) - 1);
	endwin();
}

int screen_signal_fd(void)
{
	return sig_pipe[0];
}

int screen_take_signal(void)
{
	unsigned char b;
	if (sig_pipe[0] < 0)
		return 0;
	ssize_t r = read(sig_pipe[0], &b, 1);
	return r == 1 ? b : 0;
}

static void set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(sig, &sa, NULL);
}

static void free_windows(struct screen *s)
{
	struct _win_st **w[] = { &s->transcript, &s->status, &s->rule, &s->input, &s->hint };
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (*w[i]) {
			delwin(*w[i]);
			*w[i] = NULL;
		}
}

static WINDOW *make(const struct rect *r)
{
	if (!r->h || !r->w)
		return NULL;
	WINDOW *w = newwin(r->h, r->w, r->y, r->x);
	if (w)
		leaveok(w, TRUE);
	return w;
}

static void build(struct screen *s)
{
	free_windows(s);
	if (s->lay.too_small)
		return;
	s->transcript = make(&s->lay.transcript);
	s->status = make(&s->lay.status);
	s->rule = make(&s->lay.rule);
	s->input = make(&s->lay.input);
	s->hint = make(&s->lay.hint);
	if (s->input)
		leaveok(s->input, FALSE); /* the cursor lives here */
}

int screen_relayout(struct screen *s, int input_rows)
{
	struct layout l;
	layout_compute(&l, LINES, COLS, input_rows, s->status_enabled);
	s->input_rows = input_rows;
	if (!memcmp(&l, &s->lay, sizeof(l)) && (s->transcript || l.too_small))
		return 0;
	s->lay = l;
	build(s);
	return 1;
}

void screen_resize(struct screen *s)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
		resizeterm(ws.ws_row, ws.ws_col);
	/* repaint from scratch: no stray characters survive a resize */
	clearok(curscr, TRUE);
	memset(&s->lay, 0, sizeof(s->lay));
	screen_relayout(s, s->input_rows);
}

/*
 * A terminal that cannot move the cursor or clear the screen (TERM=dumb,
 * an editor's shell buffer, TERM unset) would get a chat it cannot show
 * nor use: refuse it by name before curses takes the terminal.
 */
static int terminal_usable(void)
{
	const char *term = getenv("TERM");
	int err = 0;
	if (!term || !*term)
		return error("the terminal type is not set (TERM): the chat needs a terminal "
			     "that can move the cursor; use batch mode (palaver -p TEXT, or text "
			     "on standard input) or set TERM");
	if (setupterm(NULL, STDOUT_FILENO, &err) != OK)
		return error("unknown terminal type '%s' (TERM): use batch mode (palaver -p "
			     "TEXT) or set TERM",
			     term);
	const char *cup = tigetstr("cup"), *clear = tigetstr("clear");
	int ok = cup && cup != (char *)-1 && clear && clear != (char *)-1;
	del_curterm(cur_term);
	if (!ok)
		return error("the terminal '%s' cannot move the cursor, so the chat cannot run "
			     "there; use batch mode (palaver -p TEXT, or text on standard input) "
			     "or a full terminal",
			     term);
	return 0;
}

int screen_open(struct screen *s, const char *theme, int status_pane, int mouse)
{
	memset(s, 0, sizeof(*s));
	s->status_enabled = status_pane;
	s->input_rows = 1;
	s->mouse = mouse;

	if (sig_pipe[0] < 0) {
		if (pipe(sig_pipe) < 0)
			return error("cannot create a pipe: %s", strerror(errno));
		for (int i = 0; i < 2; i++) {
			fcntl(sig_pipe[i], F_SETFL, fcntl(sig_pipe[i], F_GETFL) | O_NONBLOCK);
			fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
		}
	}
	if (terminal_usable() < 0)
		return -1;
	if (tcgetattr(STDIN_FILENO, &saved_tio) == 0)
		have_saved_tio = 1;
	/* ESCDELAY matters only to curses' own key reading, which is not used */
	if (!newterm(NULL, stdout, stdin))
		return error("cannot start the terminal screen (TERM='%s')",
			     getenv("TERM") ? getenv("TERM") : "");
	active = 1;
	set_die_hook(die_hook);
	raw();
	noecho();
	nonl();
	keypad(stdscr, FALSE);
	curs_set(1);
	s->bad_theme = theme_init(theme) < 0; /* nothing may print now: the caller says so */
	set_handler(SIGWINCH, on_signal);     /* replaces curses' own: we call resizeterm */
	set_handler(SIGTERM, on_signal);
	set_handler(SIGHUP, on_signal);
	set_handler(SIGINT, on_signal);
	set_handler(SIGQUIT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	set_handler(SIGSEGV, on_crash);
	set_handler(SIGBUS, on_crash);
	set_handler(SIGFPE, on_crash);
	set_handler(SIGILL, on_crash);
	set_handler(SIGABRT, on_crash);

	screen_write_raw(MODES_ON_PASTE, sizeof(MODES_ON_PASTE) - 1);
	if (mouse)
		screen_write_raw(MODES_ON_MOUSE, sizeof(MODES_ON_MOUSE) - 1);
	screen_relayout(s, 1);
	return 0;
}

void screen_suspend(struct screen *s)
{
	if (!active)
		return;
	screen_write_raw(MODES_OFF_PASTE MODES_OFF_MOUSE,
			 sizeof(MODES_OFF_PASTE MODES_OFF_MOUSE) - 1);
	endwin();
	signal(SIGTSTP, SIG_DFL);
	raise(SIGTSTP); /* stops here until fg */
	screen_write_raw(MODES_ON_PASTE, sizeof(MODES_ON_PASTE) - 1);
	if (s->mouse)
		screen_write_raw(MODES_ON_MOUSE, sizeof(MODES_ON_MOUSE) - 1);
	reset_prog_mode();
	screen_resize(s); /* the size may have changed meanwhile */
}

void screen_close(struct screen *s)
{
	free_windows(s);
	if (!active)
		return;
	active = 0;
	screen_write_raw(MODES_OFF_PASTE MODES_OFF_MOUSE,
			 sizeof(MODES_OFF_PASTE MODES_OFF_MOUSE) - 1);
	endwin();
	set_die_hook(NULL);
	signal(SIGWINCH, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	signal(SIGFPE, SIG_DFL);
	signal(SIGILL, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
}
