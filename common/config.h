/*
 * config.h - table-driven configuration (INI files parsed by libinih).
 *
 * A program describes its options once, in a table of dh_cfg_option; from
 * that table come the defaults, the parser, `--help`-style listings and the
 * commented example file in deploy/. Values land in a plain struct of the
 * program's own at the offsets the table gives.
 *
 * File format: INI. "[section]" headers, "key = value" lines, ';' or '#'
 * comments, values may be double-quoted. Sections whose name has a dot
 * ("[remote.PACS1]") are repeated sections: the parser hands their lines to a
 * caller-supplied handler, which usually fills an item struct through
 * dh_cfg_set() with a second table.
 *
 * Ownership: string options are malloc'ed copies owned by the target struct;
 * dh_cfg_free() releases them (and resets them to NULL).
 */
#ifndef DH_CONFIG_H
#define DH_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
	DH_CFG_STRING, /* char *           */
	DH_CFG_INT,    /* long             */
	DH_CFG_BOOL,   /* int (0/1): true/false, yes/no, on/off, 1/0 */
	DH_CFG_ENUM    /* int: index into the '|'-separated choices */
} dh_cfg_type;

typedef struct {
	const char *section;  /* "hub"; NULL for tables of repeated sections */
	const char *key;      /* "port" */
	dh_cfg_type type;
	const char *def;      /* default, as text ("11112", "true", "reject", "") */
	size_t offset;        /* offsetof(target struct, field) */
	long min, max;        /* DH_CFG_INT bounds (inclusive) */
	const char *choices;  /* DH_CFG_ENUM: "reject|accept|overwrite" */
	const char *help;     /* one sentence: what it does and its unit */
	int restart;          /* 1: a change needs a restart; 0: applied on reload */
} dh_cfg_option;

/* A table ends with an entry whose key is NULL. */
#define DH_CFG_END { NULL, NULL, DH_CFG_STRING, NULL, 0, 0, 0, NULL, NULL, 0 }

/*
 * Handler for lines of repeated sections ("prefix.name"). Returns 0 when
 * accepted, -1 with a message in err when not.
 */
typedef int (*dh_cfg_section_fn)(void *user, const char *section, const char *key,
				  const char *value, char *err, size_t errlen);

/*
 * Sets every option of the table to its default. Returns 0, or -1 if a default is invalid (a bug).
 * String options already set are freed first, so target must start zeroed (or hold earlier values).
 */
int dh_cfg_defaults(const dh_cfg_option *table, void *target);

/*
 * Sets one option from text. section may be NULL for tables of repeated
 * sections (an option whose table section is NULL matches any section; the
 * section given only names it in messages). Returns 0; 1 when the key is
 * unknown; -1 when the value is invalid (message in err: "hub.port: 70000
 * is out of range 1..65535").
 */
int dh_cfg_set(const dh_cfg_option *table, void *target, const char *section,
	       const char *key, const char *value, char *err, size_t errlen);

/*
 * Applies defaults, then reads path. Lines of sections containing a dot go to
 * extra (which may be NULL: they are then errors). Unknown keys and bad
 * values are errors, reported with file name and line number in err.
 * Returns 0 or -1.
 */
int dh_cfg_load(const char *path, const dh_cfg_option *table, void *target,
		dh_cfg_section_fn extra, void *extra_user, char *err, size_t errlen);

/* Same as dh_cfg_load, from a NUL-terminated string (tests, built-in defaults). */
int dh_cfg_load_string(const char *text, const dh_cfg_option *table, void *target,
		       dh_cfg_section_fn extra, void *extra_user, char *err, size_t errlen);

/*
 * Writes the table as an INI file: for each option a "# help (default: X;
 * needs restart)" comment and "key = value". With target NULL the defaults
 * are written (the example file); otherwise the current values.
 */
void dh_cfg_write(FILE *out, const dh_cfg_option *table, const void *target);

/* Frees string options and sets them to NULL. target may be NULL. */
void dh_cfg_free(const dh_cfg_option *table, void *target);

/* 1 when ae is a DICOM AE title: 1..16 printable ASCII characters, no
 * backslash, no leading or trailing blank; else 0. */
int dh_cfg_ae_title_ok(const char *ae);

/* Parses a boolean word; returns 0/1, or -1 when not a boolean. */
int dh_cfg_parse_bool(const char *s);

#endif
