/* The one list of compiled-in modules. Order matters where no explicit order is given:
 * phase handlers run in this order. */
#include "portico/module.h"

extern pt_module pt_return_module;
extern pt_module pt_access_log_module;
extern pt_module pt_proxy_module;
extern pt_module pt_client_cert_module;
extern pt_module pt_acl_module;
extern pt_module pt_rules_module;
extern pt_module pt_ratelimit_module;
extern pt_module pt_connlimit_module;
extern pt_module pt_restrict_module;
#ifdef PT_TEST_MODULES
extern pt_module pt_test_module;    /* modules/test_module.c: only in t/portico-test */
#endif

pt_module *const pt_modules[] = {
    /* filters first: their phase handlers run in this order (cheapest refusal first) */
    &pt_connlimit_module,
    &pt_acl_module,
    &pt_restrict_module,
    &pt_ratelimit_module,
    &pt_rules_module,
    &pt_return_module,
    &pt_client_cert_module,
    &pt_proxy_module,
#ifdef PT_TEST_MODULES
    &pt_test_module,
#endif
    &pt_access_log_module,
    NULL
};

const unsigned pt_nmodules = pt_nelems(pt_modules) - 1;

void pt_modules_init(void)
{
    /* a connection remembers the modules whose accept hook took it in 32 bits */
    _Static_assert(pt_nelems(pt_modules) - 1 <= 32, "at most 32 modules");
    for (unsigned i = 0; i < pt_nmodules; i++)
        pt_modules[i]->index = i;
}
