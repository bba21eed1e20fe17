/*
 * hubctl_out.c - hubctl's output conventions (see hubctl_out.h).
 */
#include "hubctl_out.h"

#include <string.h>

void hubctl_json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

void hubctl_print_result(PGresult *r, int json, const int *numeric)
{
	int rows = PQntuples(r), cols = PQnfields(r);
	if (json) {
		printf("[");
		for (int i = 0; i < rows; i++) {
			printf(i ? ",\n {" : "\n {");
			for (int j = 0; j < cols; j++) {
				printf(j ? ", " : "");
				hubctl_json_str(stdout, PQfname(r, j));
				printf(": ");
				if (PQgetisnull(r, i, j))
					printf("null");
				else if (numeric && numeric[j])
					printf("%s", PQgetvalue(r, i, j));
				else
					hubctl_json_str(stdout, PQgetvalue(r, i, j));
			}
			printf("}");
		}
		printf("\n]\n");
		return;
	}
	int w[32] = { 0 };
	for (int j = 0; j < cols && j < 32; j++) {
		w[j] = (int)strlen(PQfname(r, j));
		for (int i = 0; i < rows; i++)
			if ((int)strlen(PQgetvalue(r, i, j)) > w[j])
				w[j] = (int)strlen(PQgetvalue(r, i, j));
	}
	for (int j = 0; j < cols && j < 32; j++)
		printf("%-*s%s", w[j], PQfname(r, j), j + 1 < cols ? "  " : "\n");
	for (int i = 0; i < rows; i++)
		for (int j = 0; j < cols && j < 32; j++)
			printf("%-*s%s", w[j], PQgetvalue(r, i, j), j + 1 < cols ? "  " : "\n");
	if (rows == 0)
		printf("(none)\n");
}

