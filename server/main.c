#include <stdio.h>
#include "portico/core.h"
int main(int argc, char **argv) { puts("portico " PT_VERSION); return 0; }
