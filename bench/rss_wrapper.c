/*
 * rss_wrapper.c: a stand-in provider binary that records the real provider's peak RSS.
 * Used by bench/plan_rss.py, which compiles it once per provider:
 *
 *   cc -O2 -DREAL='"/path/to/real/provider"' -DRECORDS='"/records/dir"' rss_wrapper.c -o <override dir>/<provider exe>
 *
 * Terraform starts it as the provider. It forks; the child execs REAL with the same argv tail,
 * environment and file descriptors (stdin, the stdout pipe Terraform reads the handshake line
 * from, stderr), so the handshake is the real provider's own; this process writes nothing to
 * stdout or stderr unless it cannot start the child. The parent forwards termination signals
 * (TERM, INT, HUP, QUIT, USR1, USR2) to the child, waits with wait4(), writes
 * RECORDS/<child pid>.json with the child's ru_maxrss (peak resident set in KiB, the kernel's
 * high-water mark), exit status, lifetime and CPU time, then exits as the child did (same code,
 * or the same signal). RECORDS/<child pid>.start is written first, so a wrapper that was itself
 * SIGKILLed shows up as a start without an end; the child has PR_SET_PDEATHSIG=SIGTERM so it
 * never outlives a killed wrapper.
 *
 * Why C and not Python: ru_maxrss also keeps the high-water mark of the memory image the child
 * had before exec, i.e. a fork of the wrapper. A forked Python wrapper puts a floor of ~8 MiB
 * under every measurement (about what our provider's schema-only processes use); a forked small
 * C program puts it at ~1 MiB. plan_rss.py measures the floor with /bin/true and reports it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef REAL
#error "compile with -DREAL='\"/path/to/binary\"'"
#endif
#ifndef RECORDS
#error "compile with -DRECORDS='\"/path/to/records/dir\"'"
#endif

static const int FORWARDED[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof FORWARDED / sizeof FORWARDED[0])

static volatile sig_atomic_t child = 0;

static void forward(int sig) {
    if (child > 0) kill(child, sig);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double seconds(struct timeval tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

/* Writes `text` to RECORDS/<name> through a temporary file and a rename. */
static void record(const char *name, const char *text) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", RECORDS, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        off += (size_t)n;
    }
    close(fd);
    rename(tmp, path);
}

int main(int argc, char **argv) {
    (void)argc;
    sigset_t forwarded, old;
    sigemptyset(&forwarded);
    for (size_t i = 0; i < NFORWARDED; i++) sigaddset(&forwarded, FORWARDED[i]);
    /* Held until the child's pid is known, so no signal is lost or handled too early. */
    sigprocmask(SIG_BLOCK, &forwarded, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < NFORWARDED; i++) sigaction(FORWARDED[i], &sa, NULL);

    double started = now();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("rss_wrapper: fork");
        return 127;
    }
    if (pid == 0) {
        for (size_t i = 0; i < NFORWARDED; i++) signal(FORWARDED[i], SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127); /* the wrapper died before prctl */
        argv[0] = (char *)REAL;
        execv(REAL, argv);
        perror("rss_wrapper: exec " REAL);
        _exit(127);
    }
    child = pid;
    char buf[8192], name[64];
    snprintf(buf, sizeof buf, "{\"pid\": %d, \"wrapper_pid\": %d, \"real\": \"%s\", \"started\": %.6f}\n",
             (int)pid, (int)parent, REAL, started);
    snprintf(name, sizeof name, "%d.start", (int)pid);
    record(name, buf);
    sigprocmask(SIG_SETMASK, &old, NULL);

    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("rss_wrapper: wait4");
            return 127;
        }
    }
    double ended = now();
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : 127;
    snprintf(buf, sizeof buf,
             "{\"pid\": %d, \"wrapper_pid\": %d, \"real\": \"%s\", \"maxrss_kib\": %ld, \"exit\": %d, "
             "\"started\": %.6f, \"ended\": %.6f, \"lifetime_s\": %.6f, \"utime_s\": %.6f, \"stime_s\": %.6f}\n",
             (int)pid, (int)parent, REAL, ru.ru_maxrss, code, started, ended, ended - started,
             seconds(ru.ru_utime), seconds(ru.ru_stime));
    snprintf(name, sizeof name, "%d.json", (int)pid);
    record(name, buf);

    if (code < 0) { /* killed by a signal: die the same way */
        signal(-code, SIG_DFL);
        sigset_t unblock;
        sigemptyset(&unblock);
        sigaddset(&unblock, -code);
        sigprocmask(SIG_UNBLOCK, &unblock, NULL);
        raise(-code);
        return 128 - code;
    }
    return code;
}
