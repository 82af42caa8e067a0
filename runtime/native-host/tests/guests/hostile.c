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
 *   escape      try the ways out past files: a network namespace, reboot(2), raw,
 *               netlink and UDP sockets (to 127.0.0.1:handlerProperties.port), a UNIX
 *               socket (handlerProperties.unix), signalling the runtime, capabilities;
 *               leave a daemon in a session of its own (its pid in
 *               handlerProperties.pidFile); report each errno
 *   (absent)    succeed
 * and reports what it saw in resultDetails, e.g. "shadow=EACCES outside=EACCES ...".
 *
 * Built three times by build.rs: as is, with HOSTILE_ABI_MAJOR=2 (a table for a future
 * ABI) and with HOSTILE_NO_ENTRY (no entry point at all).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
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
    case EINVAL: return "EINVAL";
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

/* 0 when the call `rc` succeeded, else errno. */
static int outcome(long rc) { return rc < 0 ? errno : 0; }

/* 0 when a socket of `domain`/`type` opens, else errno. */
static int try_socket(int domain, int type) {
    int fd = socket(domain, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}

/* The effective capability set, from /proc/self/status. */
static unsigned long long effective_capabilities(void) {
    char line[256];
    unsigned long long caps = ~0ULL;
    FILE *status = fopen("/proc/self/status", "r");
    if (!status) return caps;
    while (fgets(line, sizeof line, status))
        if (strncmp(line, "CapEff:", 7) == 0) caps = strtoull(line + 7, NULL, 16);
    fclose(status);
    return caps;
}

static void escape(const char *properties, char *details, size_t size) {
    char port_text[16] = "0", unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)] = "",
         pid_file[1024] = "";
    int unshared, rebooted, packet, netlink, udp, unix_connect, signalled, disk = ENOENT;
    struct sockaddr_in to = {.sin_family = AF_INET};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;
    pid_t daemon;
    handrail_json_string(handrail_json_find(properties, "port"), port_text, sizeof port_text);
    handrail_json_string(handrail_json_find(properties, "unix"), unix_path, sizeof unix_path);
    handrail_json_string(handrail_json_find(properties, "pidFile"), pid_file, sizeof pid_file);
    unshared = outcome(unshare(CLONE_NEWNET));
    /* A magic the kernel rejects (EINVAL) once it has let the caller through (EPERM). */
    rebooted = outcome(syscall(SYS_reboot, 0, 0, 0, 0));
    packet = try_socket(AF_PACKET, SOCK_RAW);
    netlink = try_socket(AF_NETLINK, SOCK_RAW);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        udp = errno;
    } else {
        to.sin_port = htons((unsigned short)atoi(port_text));
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        udp = outcome(sendto(fd, "escaped", 7, 0, (struct sockaddr *)&to, sizeof to));
        close(fd);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        unix_connect = errno;
    } else {
        memcpy(sun.sun_path, unix_path, sizeof sun.sun_path);
        unix_connect = outcome(connect(fd, (struct sockaddr *)&sun, sizeof sun));
        close(fd);
    }
    signalled = outcome(kill(getppid(), 0));
    /* The device's disk, read raw: the first block device there is. */
    {
        const char *disks[] = {"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/mmcblk0"};
        for (size_t i = 0; i < sizeof disks / sizeof *disks && disk == ENOENT; i++)
            if (access(disks[i], F_OK) == 0) disk = try_open(disks[i], O_RDONLY);
    }
    /* A daemon: a new session, forked twice, its pid written where the test looks. */
    daemon = fork();
    if (daemon == 0) {
        setsid();
        if (fork() == 0) {
            FILE *f = fopen(pid_file, "w");
            if (f) {
                fprintf(f, "%d\n", getpid());
                fclose(f);
            }
            for (;;) pause();
        }
        _exit(0);
    }
    if (daemon > 0) waitpid(daemon, NULL, 0);
    for (int i = 0; i < 100000 && access(pid_file, R_OK) != 0; i++) usleep(100);
    snprintf(details, size,
             "unshare=%s reboot=%s packet=%s netlink=%s udp=%s unix=%s signal-runtime=%s disk=%s capeff=%llx",
             errno_name(unshared), errno_name(rebooted), errno_name(packet),
             errno_name(netlink), errno_name(udp), errno_name(unix_connect),
             errno_name(signalled), errno_name(disk), effective_capabilities());
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
    } else if (strcmp(misbehave, "escape") == 0) {
        escape(properties, details, sizeof details);
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
