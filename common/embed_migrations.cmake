# Writes OUT: a C array named SYMBOL of the SQL migrations in FILES (named
# NNN_name.sql, joined by "|").
string(REPLACE "|" ";" FILES "${FILES}")
set(body "/* generated from sql/ by embed_migrations.cmake; do not edit */\n#include \"db.h\"\n\nconst dh_db_migration ${SYMBOL}[] = {\n")
foreach(f IN LISTS FILES)
  get_filename_component(name ${f} NAME_WE)
  string(SUBSTRING ${name} 0 3 num)
  math(EXPR num "${num}")
  file(READ ${f} sql HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" sql "${sql}")
  string(APPEND body "  { ${num}, \"${name}\", \"${sql}\" },\n")
endforeach()
string(APPEND body "  { 0, NULL, NULL }\n};\n")
file(WRITE ${OUT} "${body}")
