/*
 * hostile.c: `test/hostile:1`, a native handler that misbehaves on request.
 *
 * Its install does what the step's handlerProperties.misbehave says:
 *   segfault | abort | exit | hang   die or never return, in the way named (hang first
 *               makes `hanging` in the work folder, its working directory)
 *   probe       try to read /etc/shadow, write beside the work folder and in /tmp, read
 *               the first payload file, write in the work folder; report what happened
 *   alloc       allocate and touch 512 MiB; report whether malloc refused
 *   run         start handlerProperties.program; report how that went
 *   (absent)    succeed
 * and reports what it saw in resultDetails, e.g. "shadow=EACCES outside=EACCES ...".
 *
 * Built three times by build.rs: as is, with HOSTILE_ABI_MAJOR=2 (a table for a future
 * ABI) and with HOSTILE_NO_ENTRY (no entry point at all).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handrail_handler.h"

#ifndef HOSTILE_ABI_MAJOR
#define HOSTILE_ABI_MAJOR HANDRAIL_ABI_MAJOR
#endif

#define HOSTILE_FAILED HANDRAIL_EXTENDED(32, 0x0F0)

static const char *errno_name(int e) {
    static char other[32];
    switch (e) {
    case 0: return "ok";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENOMEM: return "ENOMEM";
    case EROFS: return "EROFS";
    default:
        snprintf(other, sizeof other, "errno%d", e);
        return other;
    }
}

/* 0 when `path` can be opened with `flags`, else the errno. */
static int try_open(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    close(fd);
    if (flags & O_CREAT) unlink(path);
    return 0;
}

static void probe(const char *context, char *details, size_t size) {
    char work[2048] = "", path[2200], payload[2048] = "(none)";
    const char *files = handrail_json_find(context, "files");
    int shadow, outside, tmp, payload_read = ENOENT, work_write;
    handrail_json_string(handrail_json_find(context, "workFolder"), work, sizeof work);
    if (files && *files == '[') {
        const char *first = files + 1;
        while (*first == ' ') first++;
        if (*first == '{' &&
            handrail_json_string(handrail_json_find(first, "path"), payload, sizeof payload) == 0)
            payload_read = try_open(payload, O_RDONLY);
    }
    shadow = try_open("/etc/shadow", O_RDONLY);
    snprintf(path, sizeof path, "%s/../escaped-by-hostile", work);
    outside = try_open(path, O_WRONLY | O_CREAT | O_TRUNC);
    tmp = try_open("/tmp/escaped-by-hostile", O_WRONLY | O_CREAT | O_TRUNC);
    snprintf(path, sizeof path, "%s/hostile-was-here", work);
    work_write = try_open(path, O_WRONLY | O_CREAT | O_TRUNC);
    snprintf(details, size, "shadow=%s outside=%s tmp=%s payload=%s work=%s",
             errno_name(shadow), errno_name(outside), errno_name(tmp),
             errno_name(payload_read), errno_name(work_write));
}

static void run_program(const char *properties, char *details, size_t size) {
    char program[1024];
    char *argv[2];
    char *envp[] = {NULL};
    pid_t pid;
    int rc, status = 0;
    if (handrail_json_string(handrail_json_find(properties, "program"), program,
                             sizeof program) != 0) {
        snprintf(details, size, "run=no-program");
        return;
    }
    argv[0] = program;
    argv[1] = NULL;
    rc = posix_spawn(&pid, program, NULL, NULL, argv, envp);
    if (rc != 0) {
        snprintf(details, size, "run=%s", errno_name(rc));
        return;
    }
    if (waitpid(pid, &status, 0) < 0) {
        snprintf(details, size, "run=wait-%s", errno_name(errno));
        return;
    }
    if (WIFEXITED(status))
        snprintf(details, size, "run=exit:%d", WEXITSTATUS(status));
    else
        snprintf(details, size, "run=signal:%d", WTERMSIG(status));
}

static const char *describe(void) {
    return "{\"id\":\"test/hostile:1\",\"actions\":[\"install\"],\"contract\":[1,0]}";
}

static int32_t install(const char *context) {
    char result_file[4096], misbehave[64] = "", details[1024] = "behaved";
    const char *properties = handrail_json_find(context, "handlerProperties");
    if (handrail_json_string(handrail_json_find(context, "resultFile"), result_file,
                             sizeof result_file) != 0)
        return 1;
    if (properties)
        handrail_json_string(handrail_json_find(properties, "misbehave"), misbehave,
                             sizeof misbehave);
    fprintf(stderr, "hostile: install, misbehave=%s\n", misbehave);
    if (strcmp(misbehave, "segfault") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    } else if (strcmp(misbehave, "abort") == 0) {
        abort();
    } else if (strcmp(misbehave, "exit") == 0) {
        exit(3);
    } else if (strcmp(misbehave, "hang") == 0) {
        int marker = open("hanging", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (marker >= 0) close(marker);
        for (;;) sleep(1);
    } else if (strcmp(misbehave, "probe") == 0) {
        probe(context, details, sizeof details);
    } else if (strcmp(misbehave, "alloc") == 0) {
        size_t n = (size_t)512 << 20;
        char *p = malloc(n);
        if (p) memset(p, 1, n);
        snprintf(details, sizeof details, "alloc=%s", p ? "ok" : "refused");
        free(p);
    } else if (strcmp(misbehave, "run") == 0) {
        run_program(properties, details, sizeof details);
    } else if (misbehave[0] != '\0') {
        handrail_write_result(result_file, HANDRAIL_FAILURE, HOSTILE_FAILED, "unknown misbehaviour");
        return 0;
    }
    handrail_write_result(result_file, HANDRAIL_INSTALL_SUCCESS, 0, details);
    return 0;
}

#ifndef HOSTILE_NO_ENTRY
static const struct handrail_handler_table_v1 table = {
    .abi_major = HOSTILE_ABI_MAJOR,
    .abi_minor = HANDRAIL_ABI_MINOR,
    .describe = describe,
    .install = install,
};

const struct handrail_handler_table_v1 *handrail_handler_v1(void) { return &table; }
#else
/* Keeps the functions used, so -Werror has nothing to say about them. */
const void *hostile_without_entry_point(void) { return (const void *)describe; }
const void *hostile_without_entry_point_install(void) { return (const void *)install; }
#endif
