/* The command sandbox's spawner: posix_spawn's vfork path, plus what posix_spawn cannot do.
 *
 * A command child of a root worker must start as an unprivileged user with no new
 * privileges and resource limits. posix_spawn cannot change ids or limits, and the other
 * ways cost the pipeline a lot per job (measured on the 2-core bench machine, total CPU per
 * `echo hi`: posix_spawn 0.78 ms; fork with subprocess's user= 2.2 ms; an exec wrapper
 * 1.4 ms for this code as a static helper, 2.7 ms for prlimit + setpriv). So the same steps
 * run here, in the child of a vfork, between the fork and the exec, with no extra exec.
 *
 * The child shares the worker's memory until it execs, so it makes raw system calls only:
 * glibc's setuid family would signal the worker's threads (its set-id broadcast) and must
 * not run in a vfork child. Every signal is blocked around the vfork and reset to its
 * default in the child before it is unblocked, so no handler of the worker runs there.
 * Built by `make sandbox` (part of `make deps`) into _sandbox_spawn.so, called through ctypes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif

/* Which step failed, reported with its errno through the shared memory of the vfork. */
enum { STEP_NONE, STEP_SESSION, STEP_FDS, STEP_LIMITS, STEP_IDS, STEP_NNP, STEP_EXEC };

struct report {
    volatile int step;
    volatile int err;
};

/* `fd` as `target`, open across the exec (dup3, not dup2: arm64 has no dup2 system call). */
static int move_fd(int fd, int target) {
    if (fd == target) return (int)syscall(SYS_fcntl, fd, F_SETFD, 0);
    return (int)syscall(SYS_dup3, fd, target, 0);
}

/* Start `path` with `argv`/`envp`: stdin from /dev/null, stdout/stderr on `out_fd`/`err_fd`,
 * in a session of its own, `nlimits` (resource, value) pairs set as soft and hard limits,
 * then (when `drop`) no supplementary groups, gid and uid `gid`/`uid`, no capabilities, and
 * always no new privileges. Returns the pid, or -(step * 4096 + errno) when a step failed. */
int baker_spawn(const char *path, char *const argv[], char *const envp[], int out_fd,
                int err_fd, const int64_t *limits, int nlimits, int drop, unsigned uid,
                unsigned gid) {
    volatile struct report rep = {STEP_NONE, 0};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork();
    if (pid == 0) {
        struct sigaction dfl = {0};
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) {
            struct sigaction cur;
            if (sigaction(sig, NULL, &cur) == 0 && cur.sa_handler != SIG_IGN &&
                cur.sa_handler != SIG_DFL)
                sigaction(sig, &dfl, NULL);
        }
        sigset_t none;
        sigemptyset(&none);
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
        int step = STEP_SESSION;
        if (syscall(SYS_setsid) < 0) goto fail;
        step = STEP_FDS;
        int null = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
        if (null < 0 || move_fd(null, 0) < 0 || move_fd(out_fd, 1) < 0 || move_fd(err_fd, 2) < 0)
            goto fail;
        if (null > 2) syscall(SYS_close, null);
        step = STEP_LIMITS;
        for (int i = 0; i < nlimits; i++) {
            struct rlimit lim = {(rlim_t)limits[2 * i + 1], (rlim_t)limits[2 * i + 1]};
            if (syscall(SYS_prlimit64, 0, (int)limits[2 * i], &lim, NULL) < 0) goto fail;
        }
        if (drop) {
            step = STEP_IDS;
            struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
            struct __user_cap_data_struct none_caps[2] = {{0, 0, 0}, {0, 0, 0}};
            if (syscall(SYS_setgroups, 0, NULL) < 0 ||
                syscall(SYS_setresgid, gid, gid, gid) < 0 ||
                syscall(SYS_setresuid, uid, uid, uid) < 0 ||
                /* Dropping root already empties the permitted set; this empties the
                 * inheritable one too, so no file's capabilities can come back. */
                syscall(SYS_capset, &head, none_caps) < 0)
                goto fail;
        }
        step = STEP_NNP;
        if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) goto fail;
        step = STEP_EXEC;
        syscall(SYS_execve, path, argv, envp);
    fail:
        rep.err = errno;
        rep.step = step;
        syscall(SYS_exit, 127);
    }
    int saved = pid < 0 ? errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) return -saved;
    if (rep.step != STEP_NONE) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return -(rep.step * 4096 + rep.err);
    }
    return pid;
}
