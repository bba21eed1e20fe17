/* test_ccwire.c - (being written) */
#include <CUnit/Basic.h>
int main(void) { return 0; }
