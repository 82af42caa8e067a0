/*
 * marker.c: a complete Handrail native handler in C, `contoso/marker:1`.
 *
 * It records that an update is installed by creating a marker file named after the step's
 * installed criteria in a device folder, and answers is-installed by looking for it. The
 * device folder comes from the registration's [config] table (`markerDir`), which must
 * also be granted to the handler as `capabilities.write`:
 *
 *     id = "contoso/marker:1"
 *     kind = "native"
 *     artifact = "libmarker.so"
 *     sha256 = "..."
 *     [capabilities]
 *     write = ["/var/lib/contoso/markers"]
 *     [config]
 *     markerDir = "/var/lib/contoso/markers"
 *
 * Build: cc -shared -fPIC -O2 -I sdk/c -o libmarker.so sdk/c/examples/marker.c
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "handrail_handler.h"

/* Extended codes of this handler (component 32: custom handlers). */
#define MARKER_BAD_CONTEXT HANDRAIL_EXTENDED(32, 0x001)
#define MARKER_NO_CRITERIA HANDRAIL_EXTENDED(32, 0x002)
#define MARKER_WRITE_FAILED HANDRAIL_EXTENDED(32, 0x003)

struct step {
    char result_file[4096];
    char marker[4096];
};

/* Reads what every action needs from the context; returns 0, or writes a failure. */
static int read_step(const char *context, struct step *step, int need_marker) {
    char dir[2048], criteria[1024];
    const char *config;
    if (handrail_json_string(handrail_json_find(context, "resultFile"), step->result_file,
                             sizeof step->result_file) != 0)
        return -1; /* no result file to report to: the runtime reports it missing */
    if (!need_marker) return 0;
    config = handrail_json_find(context, "handlerConfig");
    if (!config || handrail_json_string(handrail_json_find(config, "markerDir"), dir,
                                        sizeof dir) != 0) {
        handrail_write_result(step->result_file, HANDRAIL_FAILURE, MARKER_BAD_CONTEXT,
                              "the registration's [config] has no markerDir");
        return -1;
    }
    if (handrail_json_string(handrail_json_find(context, "installedCriteria"), criteria,
                             sizeof criteria) != 0 ||
        criteria[0] == '\0' || strchr(criteria, '/') != NULL) {
        handrail_write_result(step->result_file, HANDRAIL_FAILURE, MARKER_NO_CRITERIA,
                              "the step has no installedCriteria usable as a file name");
        return -1;
    }
    snprintf(step->marker, sizeof step->marker, "%s/%s.installed", dir, criteria);
    return 0;
}

static const char *describe(void) {
    return "{\"id\":\"contoso/marker:1\",\"actions\":[\"is-installed\",\"install\"],"
           "\"contract\":[1,0]}";
}

static int32_t is_installed(const char *context) {
    struct step step;
    int installed;
    if (read_step(context, &step, 1) != 0) return 0;
    installed = access(step.marker, F_OK) == 0;
    handrail_write_result(step.result_file,
                          installed ? HANDRAIL_IS_INSTALLED_INSTALLED
                                    : HANDRAIL_IS_INSTALLED_NOT_INSTALLED,
                          0, installed ? "marker present" : "no marker");
    return 0;
}

static int32_t install(const char *context) {
    struct step step;
    FILE *f;
    char details[4200];
    if (read_step(context, &step, 1) != 0) return 0;
    f = fopen(step.marker, "w");
    if (!f || fclose(f) != 0) {
        snprintf(details, sizeof details, "cannot create %s: %s", step.marker, strerror(errno));
        handrail_write_result(step.result_file, HANDRAIL_FAILURE, MARKER_WRITE_FAILED, details);
        return 0;
    }
    snprintf(details, sizeof details, "created %s", step.marker);
    handrail_write_result(step.result_file, HANDRAIL_INSTALL_SUCCESS, 0, details);
    return 0;
}

static const struct handrail_handler_table_v1 table = {
    .abi_major = HANDRAIL_ABI_MAJOR,
    .abi_minor = HANDRAIL_ABI_MINOR,
    .describe = describe,
    .is_installed = is_installed,
    .install = install,
    /* Not listed by describe, so never called: the runtime answers them itself. */
    .download = NULL,
    .backup = NULL,
    .apply = NULL,
    .restore = NULL,
    .cancel = NULL,
};

const struct handrail_handler_table_v1 *handrail_handler_v1(void) { return &table; }
