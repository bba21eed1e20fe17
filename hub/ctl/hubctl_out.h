/*
 * hubctl_out.h - hubctl's output conventions, shared by its command groups:
 * a query result as an aligned table with a header line for people, or as
 * one JSON array of objects (column name -> value) for scripts.
 */
#ifndef HUB_HUBCTL_OUT_H
#define HUB_HUBCTL_OUT_H

#include <libpq-fe.h>
#include <stdio.h>

/* Writes s as a JSON string (RFC 8259 escapes). */
void hubctl_json_str(FILE *out, const char *s);

/*
 * Prints r to stdout: a table, or with json a JSON array; numeric (may be
 * NULL) marks the columns written as JSON numbers. NULL values are "" in
 * tables and null in JSON.
 */
void hubctl_print_result(PGresult *r, int json, const int *numeric);

#endif
