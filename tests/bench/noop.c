/*
 * noop.c: the benchmark's no-op native handler, `bench/noop:1`. Its only action,
 * install, writes a success result and returns: what is measured is the runtime's cost
 * of a native call (worker process, Landlock, library load, result file), not the
 * handler's.
 */
#include "handrail_handler.h"

static const char *describe(void) {
    return "{\"id\":\"bench/noop:1\",\"actions\":[\"install\"],\"contract\":[1,0]}";
}

static int32_t install(const char *context) {
    char result_file[4096];
    if (handrail_json_string(handrail_json_find(context, "resultFile"), result_file,
                             sizeof result_file) != 0)
        return 0; /* no result file to report to: the runtime reports it missing */
    handrail_write_result(result_file, HANDRAIL_INSTALL_SUCCESS, 0, "");
    return 0;
}

static const struct handrail_handler_table_v1 table = {
    .abi_major = HANDRAIL_ABI_MAJOR,
    .abi_minor = HANDRAIL_ABI_MINOR,
    .describe = describe,
    .is_installed = NULL,
    .download = NULL,
    .install = install,
    .backup = NULL,
    .apply = NULL,
    .restore = NULL,
    .cancel = NULL,
};

const struct handrail_handler_table_v1 *handrail_handler_v1(void) { return &table; }
