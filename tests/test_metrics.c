#include <petscsys.h>
int main(void) { return 1; } /* being written */
