/* STUB */
#include "portico/http.h"
