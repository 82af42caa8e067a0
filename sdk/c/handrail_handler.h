/*
 * handrail_handler.h: the C ABI of Handrail native step handlers, version 1.
 *
 * A native handler is a shared library (.so) that exports one function,
 *
 *     const struct handrail_handler_table_v1 *handrail_handler_v1(void);
 *
 * returning a pointer to a table that lives as long as the library is loaded. The runtime
 * loads the library inside a worker process of its own, one worker per action: a crash,
 * abort, hang or exit() in the library ends that worker, never the runtime, and is
 * reported as a failed result with the runtime's extended code (0x34800018 worker died,
 * 0x34800011 time limit, 0x34800013 cancelled, 0x34800010 an action returned non-zero).
 *
 * Handshake. `abi_major` must equal the runtime's contract major (HANDRAIL_ABI_MAJOR);
 * `abi_minor` may be older than or equal to the runtime's minor. `describe` returns, as a
 * NUL-terminated JSON string owned by the library and valid until it is unloaded,
 *
 *     {"id": "vendor/name:major", "actions": ["is-installed", "install", ...],
 *      "contract": [1, 0]}
 *
 * whose id must be the registered handler id and whose "contract" follows the same rule.
 * Every action listed must have a non-NULL function in the table; the runtime answers
 * actions that are not listed itself (backup 1001, restore 1101, download 502,
 * is-installed 901, cancel 801) and never calls them. `describe` must not touch the file
 * system.
 *
 * Actions. Each action function receives the step context as NUL-terminated JSON (the
 * contract's StepContext serialisation, below), does its work, writes its result to the
 * file named by "resultFile" as
 *
 *     {"resultCode": n, "extendedResultCode": n, "resultDetails": "..."}
 *
 * and returns 0. The runtime reads and validates that file exactly as it does for
 * WebAssembly handlers (a missing, oversized, malformed or out-of-phase result is a
 * failure with its own extended code). A non-zero return means the handler could not
 * run the action at all; the runtime reports it as a failure (0x34800010) and ignores any
 * result file. Result codes by action: download 500s, backup 1000s, install 600s,
 * apply 700s, restore 1100s, cancel 800s, is-installed 900 (installed) / 901.
 *
 * The step context:
 *
 *     {"workflowId": "...", "updateId": {"provider": "...", "name": "...", "version": "..."},
 *      "stepIndex": 0, "level": 0, "handlerId": "vendor/name:major",
 *      "handlerProperties": {...},   the step's handlerProperties, from the update
 *      "handlerConfig": {...},       the registration's [config] table, local to the device
 *      "files": [{"name": "...", "path": "/real/path", "size": n}, ...],
 *      "workFolder": "/real/path", "resultFile": "/real/path/result-install.json",
 *      "installedCriteria": "..." or null, "component": {...} or null}
 *
 * Sandbox. Paths in the context are real paths. The worker confines itself with Landlock
 * before it loads the library, to the view a WebAssembly handler gets: the step's payload
 * files read-only, the work folder read-write, plus what the handler's registration grants
 * (capabilities.read, capabilities.write, and execute for capabilities.run programs), plus
 * read access to the library and to the system library folders the dynamic loader needs.
 * Everything else fails with EACCES; TCP is denied where the kernel supports it. The
 * worker also has rlimits: address space limits.memory_mib, no core dumps, CPU time
 * limits.timeout_secs. It runs with an empty environment, the work folder as its working
 * directory, and its stdout and stderr captured into the runtime's log. Handlers run
 * granted programs themselves (fork/exec with an argument list); cancellation kills the
 * worker and everything it started.
 *
 * Where Landlock is unavailable the runtime refuses to run the handler unless its
 * registration says `config.landlock = "best-effort"`, in which case it runs unconfined
 * with a warning in the log.
 *
 * The inline helpers below (handrail_json_*, handrail_write_result) are optional; define
 * HANDRAIL_NO_HELPERS before including this header to leave them out.
 */
#ifndef HANDRAIL_HANDLER_H
#define HANDRAIL_HANDLER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The contract version this header describes. */
#define HANDRAIL_ABI_MAJOR 1
#define HANDRAIL_ABI_MINOR 0

/* The name of the exported entry point, for dlsym. */
#define HANDRAIL_ENTRY_POINT_V1 "handrail_handler_v1"

/* One action: the step context as JSON in, 0 out once the result file is written. */
typedef int32_t (*handrail_action_fn)(const char *context_json);

/* The function table. Field order and types are the ABI: append only, in a new minor. */
struct handrail_handler_table_v1 {
    uint16_t abi_major;
    uint16_t abi_minor;
    const char *(*describe)(void);
    handrail_action_fn is_installed;
    handrail_action_fn download;
    handrail_action_fn backup;
    handrail_action_fn install;
    handrail_action_fn apply;
    handrail_action_fn restore;
    handrail_action_fn cancel;
};

/* The entry point every native handler exports. */
const struct handrail_handler_table_v1 *handrail_handler_v1(void);

/* Result codes handlers answer with most often (see the contract for all of them). */
#define HANDRAIL_FAILURE 0
#define HANDRAIL_FAILURE_CANCELLED (-1)
#define HANDRAIL_DOWNLOAD_SUCCESS 500
#define HANDRAIL_INSTALL_SUCCESS 600
#define HANDRAIL_APPLY_SUCCESS 700
#define HANDRAIL_CANCEL_SUCCESS 800
#define HANDRAIL_IS_INSTALLED_INSTALLED 900
#define HANDRAIL_IS_INSTALLED_NOT_INSTALLED 901
#define HANDRAIL_BACKUP_SUCCESS 1000
#define HANDRAIL_RESTORE_SUCCESS 1100

/* An extended result code: facility 3 (step handler), an 8-bit component, a 20-bit code.
 * Vendors use component 32 (custom) or their own. */
#define HANDRAIL_EXTENDED(component, code) \
    ((int32_t)((3u << 28) | (((uint32_t)(component) & 0xFFu) << 20) | ((uint32_t)(code) & 0xFFFFFu)))

#ifndef HANDRAIL_NO_HELPERS

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Skips a JSON string starting at its opening quote; returns the character after the
 * closing quote, or NULL when the string is not terminated. */
static inline const char *handrail_json_skip_string(const char *p) {
    for (p++; *p; p++) {
        if (*p == '\\') {
            if (!*++p) return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Skips one JSON value (object, array, string or scalar) starting at `p`; returns the
 * character after it, or NULL on malformed input. */
static inline const char *handrail_json_skip_value(const char *p) {
    int depth = 0;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    do {
        if (!*p) return NULL;
        if (*p == '"') {
            p = handrail_json_skip_string(p);
            if (!p) return NULL;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0) return p; /* a scalar ended by its container */
            depth--;
        } else if (depth == 0 && (*p == ',')) {
            return p;
        }
        p++;
    } while (depth > 0 || (*p && *p != ',' && *p != '}' && *p != ']'));
    return p;
}

/* Finds `key` among the top-level members of the JSON object at `object`; returns a
 * pointer to its value, or NULL when the key is absent or the input malformed. Use it
 * again on the result to reach nested objects, e.g. "handlerProperties" then a property. */
static inline const char *handrail_json_find(const char *object, const char *key) {
    const char *p = object;
    size_t key_len = strlen(key);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p != '{') return NULL;
    p++;
    for (;;) {
        const char *name, *end;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') p++;
        if (*p != '"') return NULL;
        name = p + 1;
        end = handrail_json_skip_string(p);
        if (!end) return NULL;
        p = end;
        while (*p == ' ' || *p == ':') p++;
        if ((size_t)(end - 1 - name) == key_len && strncmp(name, key, key_len) == 0) return p;
        p = handrail_json_skip_value(p);
        if (!p) return NULL;
    }
}

/* Copies the JSON string value at `value` (as returned by handrail_json_find) into `out`,
 * unescaping \" \\ \/ \n \t; returns 0, or -1 when it is not a string or does not fit. */
static inline int handrail_json_string(const char *value, char *out, size_t out_size) {
    size_t n = 0;
    if (!value || *value != '"' || out_size == 0) return -1;
    for (value++; *value && *value != '"'; value++) {
        char c = *value;
        if (c == '\\') {
            c = *++value;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c != '"' && c != '\\' && c != '/') return -1;
        }
        if (n + 1 >= out_size) return -1;
        out[n++] = c;
    }
    if (*value != '"') return -1;
    out[n] = '\0';
    return 0;
}

/* Writes the result file: {"resultCode", "extendedResultCode", "resultDetails"} with
 * `details` escaped. Returns 0, or -1 when the file cannot be written. */
static inline int handrail_write_result(const char *result_file, int32_t result_code,
                                        int32_t extended_code, const char *details) {
    FILE *f = fopen(result_file, "w");
    const char *d;
    if (!f) return -1;
    fprintf(f, "{\"resultCode\":%d,\"extendedResultCode\":%d,\"resultDetails\":\"",
            (int)result_code, (int)extended_code);
    for (d = details ? details : ""; *d; d++) {
        unsigned char c = (unsigned char)*d;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputs("\"}", f);
    return fclose(f) == 0 ? 0 : -1;
}

#endif /* HANDRAIL_NO_HELPERS */

#ifdef __cplusplus
}
#endif

#endif /* HANDRAIL_HANDLER_H */
