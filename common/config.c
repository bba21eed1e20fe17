/*
 * config.c - table-driven configuration on top of libinih (see config.h).
 *
 * libinih splits the file into (section, key, value) triples; everything
 * else happens here: routing each triple to the option table or to the
 * handler of repeated sections, typed conversion with range checks, and
 * error messages that name the file, the line and "section.key".
 *
 * Lines are fed to libinih through our own reader (ini_parse_stream) for
 * three reasons:
 *  - Debian builds libinih with INI_HANDLER_LINENO 0, so the handler cannot
 *    learn the line number; the reader counts lines itself.
 *  - The reader strips leading blanks. libinih would otherwise treat an
 *    indented "key = value" as a continuation of the previous value
 *    (INI_ALLOW_MULTILINE), silently assigning "key = value" as text.
 *  - libinih cuts lines longer than its buffer into pieces and parses each
 *    piece as a line; the reader detects such lines and reports them.
 * After the first error the reader ends the input, so exactly one precise
 * message is produced.
 *
 * Quoting: a value that starts and ends with '"' has those two characters
 * removed; there are no escapes. libinih ends a value at " ;" (an inline
 * comment) even inside quotes, so such text cannot be expressed.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- option access ------------------------------------------------------ */

static void *field(void *target, const dh_cfg_option *o)
{
	return (char *)target + o->offset;
}

static const void *cfield(const void *target, const dh_cfg_option *o)
{
	return (const char *)target + o->offset;
}

/*
 * An option with section NULL belongs to a table of repeated sections and
 * matches whatever section the caller names ("remote.PACS1"); otherwise the
 * sections must be equal.
 */
static const dh_cfg_option *find_option(const dh_cfg_option *table, const char *section,
					const char *key)
{
	for (const dh_cfg_option *o = table; o->key != NULL; o++) {
		if (strcmp(o->key, key) != 0)
			continue;
		if (o->section == NULL)
			return o;
		if (section != NULL && strcmp(o->section, section) == 0)
			return o;
	}
	return NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "hub.port", or just "port" when the option has no section. */
static void option_name(char *buf, size_t len, const char *section, const char *key)
{
	if (section != NULL && section[0] != '\0')
		snprintf(buf, len, "%s.%s", section, key);
	else
		snprintf(buf, len, "%s", key);
}

/* Index of value in the '|'-separated choices (case-insensitive), or -1. */
static int enum_index(const char *choices, const char *value)
{
	size_t vlen = strlen(value);
	const char *p = choices;
	int idx = 0;

	if (choices == NULL)
		return -1;
	for (;;) {
		const char *bar = strchr(p, '|');
		size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);

		if (n == vlen && strncasecmp(p, value, n) == 0)
			return idx;
		if (bar == NULL)
			return -1;
		p = bar + 1;
		idx++;
	}
}

/* Writes the idx-th choice to buf; "" when out of range. */
static void enum_name(char *buf, size_t len, const char *choices, int idx)
{
	const char *p = choices;

	buf[0] = '\0';
	if (choices == NULL || idx < 0)
		return;
	for (int i = 0; i < idx; i++) {
		p = strchr(p, '|');
		if (p == NULL)
			return;
		p++;
	}
	size_t n = strcspn(p, "|");
	if (n >= len)
		n = len - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
}

/* --- public setters ----------------------------------------------------- */

int dh_cfg_parse_bool(const char *s)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	if (s == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

static int set_option(const dh_cfg_option *o, void *target, const char *section,
		      const char *value, char *err, size_t errlen)
{
	char name[256];

	option_name(name, sizeof(name), section != NULL ? section : o->section, o->key);
	if (value == NULL)
		value = "";

	switch (o->type) {
	case DH_CFG_STRING: {
		char **slot = field(target, o);
		char *copy = strdup(value);

		if (copy == NULL) {
			set_err(err, errlen, "%s: out of memory", name);
			return -1;
		}
		free(*slot);
		*slot = copy;
		return 0;
	}
	case DH_CFG_INT: {
		char *end = NULL;
		long v;

		errno = 0;
		v = strtol(value, &end, 10);
		if (value[0] == '\0' || end == value || *end != '\0') {
			set_err(err, errlen, "%s: '%s' is not an integer", name, value);
			return -1;
		}
		if (errno == ERANGE || v < o->min || v > o->max) {
			set_err(err, errlen, "%s: %s is out of range %ld..%ld", name, value,
				o->min, o->max);
			return -1;
		}
		*(long *)field(target, o) = v;
		return 0;
	}
	case DH_CFG_BOOL: {
		int b = dh_cfg_parse_bool(value);

		if (b < 0) {
			set_err(err, errlen,
				"%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
				name, value);
			return -1;
		}
		*(int *)field(target, o) = b;
		return 0;
	}
	case DH_CFG_ENUM: {
		int idx = enum_index(o->choices, value);

		if (idx < 0) {
			set_err(err, errlen, "%s: '%s' is not one of %s", name, value,
				o->choices != NULL ? o->choices : "(no choices)");
			return -1;
		}
		*(int *)field(target, o) = idx;
		return 0;
	}
	}
	set_err(err, errlen, "%s: option has an unknown type", name);
	return -1;
}

int dh_cfg_set(const dh_cfg_option *table, void *target, const char *section,
	       const char *key, const char *value, char *err, size_t errlen)
{
	const dh_cfg_option *o;

	if (table == NULL || target == NULL || key == NULL) {
		set_err(err, errlen, "invalid arguments");
		return -1;
	}
	o = find_option(table, section, key);
	if (o == NULL) {
		char name[256];

		option_name(name, sizeof(name), section, key);
		set_err(err, errlen, "%s: unknown option", name);
		return 1;
	}
	return set_option(o, target, section, value, err, errlen);
}

int dh_cfg_defaults(const dh_cfg_option *table, void *target)
{
	char err[256];

	if (table == NULL || target == NULL)
		return -1;
	for (const dh_cfg_option *o = table; o->key != NULL; o++) {
		if (set_option(o, target, o->section, o->def, err, sizeof(err)) != 0)
			return -1;
	}
	return 0;
}

void dh_cfg_free(const dh_cfg_option *table, void *target)
{
	if (table == NULL || target == NULL)
		return;
	for (const dh_cfg_option *o = table; o->key != NULL; o++) {
		if (o->type == DH_CFG_STRING) {
			char **slot = field(target, o);

			free(*slot);
			*slot = NULL;
		}
	}
}

/* --- loading ------------------------------------------------------------ */

typedef struct {
	/* input: exactly one of fp / text */
	FILE *fp;
	const char *text;
	const char *name;    /* file name for messages, or "<string>" */

	int next_line;       /* number of the line the next read starts */
	int lineno;          /* number of the line last handed to libinih */
	int at_line_start;   /* the next read starts a new line */

	const dh_cfg_option *table;
	void *target;
	dh_cfg_section_fn extra;
	void *extra_user;

	int failed;          /* an error is recorded; stop reading */
	int err_line;
	char msg[512];
} load_ctx;

static void load_fail(load_ctx *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void load_fail(load_ctx *c, int line, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return;
	c->failed = 1;
	c->err_line = line;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
}

/* fgets-style read of at most num - 1 bytes from the string source. */
static char *read_text(load_ctx *c, char *str, int num)
{
	size_t n = 0;

	if (*c->text == '\0')
		return NULL;
	while (n + 1 < (size_t)num && c->text[n] != '\0') {
		n++;
		if (c->text[n - 1] == '\n')
			break;
	}
	memcpy(str, c->text, n);
	str[n] = '\0';
	c->text += n;
	return str;
}

/* 1 when the source is exhausted (used to tell a long line from a last line). */
static int source_at_end(load_ctx *c)
{
	int ch;

	if (c->text != NULL)
		return *c->text == '\0';
	ch = getc(c->fp);
	if (ch == EOF)
		return 1;
	ungetc(ch, c->fp);
	return 0;
}

static char *reader(char *str, int num, void *stream)
{
	load_ctx *c = stream;
	char *got;
	size_t len;
	int ends_line;

	if (c->failed || num < 2)
		return NULL;
	got = c->text != NULL ? read_text(c, str, num) : fgets(str, num, c->fp);
	if (got == NULL)
		return NULL;

	c->lineno = c->next_line;
	len = strlen(str);
	ends_line = len > 0 && str[len - 1] == '\n';
	if (ends_line) {
		c->next_line++;
	} else if (len == (size_t)num - 1 && !source_at_end(c)) {
		/* libinih's buffer is full and the line goes on. */
		load_fail(c, c->lineno, "line is longer than %d characters", num - 3);
		return NULL;
	}

	if (c->at_line_start) {
		size_t skip = strspn(str, " \t");

		memmove(str, str + skip, len - skip + 1);
	}
	c->at_line_start = ends_line;
	return str;
}

/* Removes one pair of enclosing double quotes, in place. */
static char *unquote(char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v[n - 1] = '\0';
		return v + 1;
	}
	return v;
}

static int handler(void *user, const char *section, const char *key, const char *raw)
{
	load_ctx *c = user;
	char err[384];
	char *copy;
	char *value;
	int rc;

	if (c->failed)
		return 0;
	/* libinih's value is read-only; unquote a copy. */
	copy = strdup(raw != NULL ? raw : "");
	if (copy == NULL) {
		load_fail(c, c->lineno, "out of memory");
		return 0;
	}
	value = unquote(copy);
	err[0] = '\0';

	if (strchr(section, '.') != NULL) {
		if (c->extra == NULL) {
			load_fail(c, c->lineno, "unknown section [%s]", section);
			goto fail;
		}
		if (c->extra(c->extra_user, section, key, value, err, sizeof(err)) != 0) {
			load_fail(c, c->lineno, "%s", err[0] != '\0' ? err : "rejected");
			goto fail;
		}
		free(copy);
		return 1;
	}

	if (section[0] == '\0') {
		load_fail(c, c->lineno, "%s: option outside of any [section]", key);
		goto fail;
	}
	rc = dh_cfg_set(c->table, c->target, section, key, value, err, sizeof(err));
	if (rc != 0) {
		load_fail(c, c->lineno, "%s", err);
		goto fail;
	}
	free(copy);
	return 1;
fail:
	free(copy);
	return 0;
}

static int load(load_ctx *c, const dh_cfg_option *table, void *target, dh_cfg_section_fn extra,
		void *extra_user, char *err, size_t errlen)
{
	int rc;

	c->next_line = 1;
	c->at_line_start = 1;
	c->table = table;
	c->target = target;
	c->extra = extra;
	c->extra_user = extra_user;

	if (dh_cfg_defaults(table, target) != 0) {
		set_err(err, errlen, "invalid default in the option table");
		return -1;
	}
	rc = ini_parse_stream(reader, c, handler, c);
	/*
	 * rc > 0 is the first line libinih found wrong: either one our handler
	 * rejected (message recorded) or a syntax error it found on its own,
	 * which wins if it came first.
	 */
	if (rc > 0 && (!c->failed || rc < c->err_line)) {
		c->failed = 0;
		load_fail(c, rc, "syntax error (expected \"[section]\" or \"key = value\")");
	} else if (rc < 0 && !c->failed) {
		load_fail(c, 0, "out of memory");
	}
	if (c->failed) {
		set_err(err, errlen, "%s:%d: %s", c->name, c->err_line, c->msg);
		return -1;
	}
	return 0;
}

int dh_cfg_load(const char *path, const dh_cfg_option *table, void *target,
		dh_cfg_section_fn extra, void *extra_user, char *err, size_t errlen)
{
	load_ctx c;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	if (path == NULL || table == NULL || target == NULL) {
		set_err(err, errlen, "invalid arguments");
		goto done;
	}
	c.name = path;
	c.fp = fopen(path, "re");
	if (c.fp == NULL) {
		int e = errno;

		/* Defaults still apply, so the target is in a defined state. */
		if (dh_cfg_defaults(table, target) != 0) {
			set_err(err, errlen, "invalid default in the option table");
			goto done;
		}
		set_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
		goto done;
	}
	rc = load(&c, table, target, extra, extra_user, err, errlen);
	if (rc == 0 && ferror(c.fp)) {
		set_err(err, errlen, "%s: read error", path);
		rc = -1;
	}
done:
	if (c.fp != NULL)
		fclose(c.fp);
	return rc;
}

int dh_cfg_load_string(const char *text, const dh_cfg_option *table, void *target,
		       dh_cfg_section_fn extra, void *extra_user, char *err, size_t errlen)
{
	load_ctx c;

	memset(&c, 0, sizeof(c));
	if (text == NULL || table == NULL || target == NULL) {
		set_err(err, errlen, "invalid arguments");
		return -1;
	}
	c.name = "<string>";
	c.text = text;
	return load(&c, table, target, extra, extra_user, err, errlen);
}

/* --- writing ------------------------------------------------------------ */

/*
 * A string needs quotes when libinih would not return it unchanged: empty,
 * surrounding blanks (stripped), or starting with a quote (which would be
 * taken as quoting). Any blank is quoted too, for readability.
 */
static void write_string(FILE *out, const char *s)
{
	if (s == NULL)
		s = "";
	if (s[0] == '\0' || strpbrk(s, " \t") != NULL || s[0] == '"')
		fprintf(out, "\"%s\"", s);
	else
		fputs(s, out);
}

static void write_value(FILE *out, const dh_cfg_option *o, const void *target)
{
	char name[128];

	if (target == NULL) {
		if (o->type == DH_CFG_STRING)
			write_string(out, o->def);
		else
			fputs(o->def != NULL ? o->def : "", out);
		return;
	}
	switch (o->type) {
	case DH_CFG_STRING:
		write_string(out, *(char *const *)cfield(target, o));
		break;
	case DH_CFG_INT:
		fprintf(out, "%ld", *(const long *)cfield(target, o));
		break;
	case DH_CFG_BOOL:
		fputs(*(const int *)cfield(target, o) ? "true" : "false", out);
		break;
	case DH_CFG_ENUM:
		enum_name(name, sizeof(name), o->choices, *(const int *)cfield(target, o));
		fputs(name, out);
		break;
	}
}

static int same_section(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void write_option(FILE *out, const dh_cfg_option *o, const void *target)
{
	const char *def = o->def != NULL ? o->def : "";

	fprintf(out, "# %s (default: ", o->help != NULL ? o->help : o->key);
	if (o->type == DH_CFG_STRING && def[0] == '\0')
		fputs("\"\"", out);
	else
		fputs(def, out);
	fputs(o->restart ? "; needs restart)\n" : ")\n", out);
	fprintf(out, "%s = ", o->key);
	write_value(out, o, target);
	fputs("\n\n", out);
}

void dh_cfg_write(FILE *out, const dh_cfg_option *table, const void *target)
{
	if (out == NULL || table == NULL)
		return;
	/*
	 * One block per section in order of first appearance, even if the
	 * table mentions a section again later. Options without a section
	 * (tables of repeated sections) are written without a header: the
	 * caller writes "[remote.NAME]" before them.
	 */
	for (size_t i = 0; table[i].key != NULL; i++) {
		size_t j;

		for (j = 0; j < i; j++) {
			if (same_section(table[j].section, table[i].section))
				break;
		}
		if (j < i)
			continue; /* section already written */
		if (table[i].section != NULL)
			fprintf(out, "[%s]\n", table[i].section);
		for (j = i; table[j].key != NULL; j++) {
			if (same_section(table[j].section, table[i].section))
				write_option(out, &table[j], target);
		}
	}
}

int dh_cfg_ae_title_ok(const char *ae)
{
	size_t n = ae ? strlen(ae) : 0;
	if (n == 0 || n > 16 || ae[0] == ' ' || ae[n - 1] == ' ')
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)ae[i] < 0x20 || ae[i] == '\\' || (unsigned char)ae[i] > 0x7e)
			return 0;
	return 1;
}
