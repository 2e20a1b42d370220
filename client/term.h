/* A minimal line editor for the interactive chat client: the terminal in raw mode, one
 * input line at the bottom (prompt + what is being typed), and output lines printed
 * above it without disturbing what is half typed.
 *
 * Keys: printable text (UTF-8), Enter, Backspace, Ctrl-U (clear), Ctrl-W (delete a
 * word), Ctrl-L (redraw), Ctrl-D on an empty line (quit). Escape sequences (arrows,
 * function keys) are ignored. A line longer than the screen scrolls horizontally.
 * Ctrl-C still raises SIGINT (ISIG stays on), so the program decides what it means.
 *
 * One thread (the loop's). */
#ifndef TN_CLI_TERM_H
#define TN_CLI_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "buf.h"

#define TN_CLI_TERM_LINE_MAX 4096

struct tn_cli_term {
	int fd_in;
	int fd_out;
	bool raw; /* the terminal settings below must be restored */
	struct termios saved;
	char prompt[96];
	struct tn_buf line; /* the line being typed */
	int width;          /* columns */
	int esc;            /* escape-sequence parser state */
};

/* Called with each line the user enters (NUL-terminated, borrowed for the call). */
typedef void (*tn_cli_term_line_fn)(void *arg, const char *line);

/* Sets up t on the given descriptors. When fd_in is a terminal it is put in raw mode
 * (restored by tn_cli_term_stop) and the prompt is drawn; otherwise t only formats
 * output. Returns TN_EIO when the terminal settings cannot be changed. */
int tn_cli_term_start(struct tn_cli_term *t, int fd_in, int fd_out, const char *prompt);

/* Restores the terminal and moves to a fresh line. Safe to call twice. */
void tn_cli_term_stop(struct tn_cli_term *t);

/* Prints one line of output (without its newline) above the input line. */
void tn_cli_term_print(struct tn_cli_term *t, const char *text);

/* Processes typed bytes: edits the line, calls on_line for each Enter. Returns true when
 * the user asked to quit (Ctrl-D on an empty line). */
bool tn_cli_term_feed(struct tn_cli_term *t, const uint8_t *data, size_t len,
        tn_cli_term_line_fn on_line, void *arg);

/* Re-reads the terminal width (after SIGWINCH) and redraws. */
void tn_cli_term_resize(struct tn_cli_term *t);

/* Columns that the UTF-8 text s (len bytes) takes: East Asian wide characters count 2,
 * continuation bytes 0. */
int tn_cli_term_width(const char *s, size_t len);

#endif
