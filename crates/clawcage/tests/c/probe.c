/* Tries one forbidden (or allowed) kernel operation per argument and prints
 * NAME=ok or NAME=<errno name>; NAME=signal:<n> when the try killed the child
 * that made it. Each try runs in a fork, so a kill or a hang stays contained. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/io_uring.h>
#include <linux/netlink.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/ptrace.h>
#include <sys/klog.h>
#include <unistd.h>
#include <termios.h>

static long r(long rc) { return rc < 0 ? -errno : 0; }

static long try_op(const char *op) {
    if (!strcmp(op, "ptrace_attach")) {
        pid_t c = fork();
        if (c == 0) { pause(); _exit(0); }
        long rc = r(ptrace(PTRACE_ATTACH, c, 0, 0));
        kill(c, SIGKILL); waitpid(c, 0, 0);
        return rc;
    }
    if (!strcmp(op, "ptrace_traceme")) return r(ptrace(PTRACE_TRACEME, 0, 0, 0));
    if (!strcmp(op, "process_vm_readv")) {
        char buf[8], src[8] = "secret";
        struct iovec l = {buf, 8}, rv = {src, 8};
        pid_t c = fork();
        if (c == 0) { pause(); _exit(0); }
        long rc = r(syscall(SYS_process_vm_readv, c, &l, 1, &rv, 1, 0));
        kill(c, SIGKILL); waitpid(c, 0, 0);
        return rc;
    }
    if (!strcmp(op, "mount_tmpfs")) return r(mount("none", "/tmp", "tmpfs", 0, 0));
    if (!strcmp(op, "mount_bind")) return r(mount("/", "/tmp", 0, MS_BIND, 0));
    if (!strcmp(op, "umount_proc")) return r(umount2("/proc", MNT_DETACH));
    if (!strcmp(op, "fsopen")) return r(syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(op, "open_tree")) return r(syscall(SYS_open_tree, AT_FDCWD, "/", 1 /*OPEN_TREE_CLONE*/));
    if (!strcmp(op, "chroot")) return r(chroot("/tmp"));
    if (!strcmp(op, "pivot_root")) return r(syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(op, "unshare_user")) return r(unshare(CLONE_NEWUSER));
    if (!strcmp(op, "unshare_mount")) return r(unshare(CLONE_NEWNS));
    if (!strcmp(op, "unshare_net")) return r(unshare(CLONE_NEWNET));
    if (!strcmp(op, "unshare_user_highbits")) return r(syscall(SYS_unshare, (long)CLONE_NEWUSER | (1L << 40)));
    if (!strcmp(op, "clone_newuser")) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        if (pid > 0) { waitpid(pid, 0, 0); return 0; }
        return -errno;
    }
    if (!strcmp(op, "clone3_newuser")) {
        struct { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; } a = {0};
        a.flags = CLONE_NEWUSER; a.exit_signal = SIGCHLD;
        long pid = syscall(SYS_clone3, &a, sizeof a);
        if (pid == 0) _exit(0);
        if (pid > 0) { waitpid(pid, 0, 0); return 0; }
        return -errno;
    }
    if (!strcmp(op, "setns")) {
        int fd = open("/proc/self/ns/net", O_RDONLY);
        if (fd < 0) return -errno;
        return r(syscall(SYS_setns, fd, 0));
    }
    if (!strcmp(op, "io_uring_setup")) { struct io_uring_params p = {0}; return r(syscall(SYS_io_uring_setup, 4, &p)); }
    if (!strcmp(op, "keyctl")) return r(syscall(SYS_keyctl, 0 /*GET_KEYRING_ID*/, -3 /*session*/, 1));
    if (!strcmp(op, "add_key")) return r(syscall(SYS_add_key, "user", "k", "v", 1, -3));
    if (!strcmp(op, "request_key")) return r(syscall(SYS_request_key, "user", "k", 0, -3));
    if (!strcmp(op, "bpf")) { union bpf_attr a; memset(&a, 0, sizeof a); a.map_type = BPF_MAP_TYPE_ARRAY; a.key_size = 4; a.value_size = 4; a.max_entries = 1; return r(syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a)); }
    if (!strcmp(op, "perf_event_open")) { struct perf_event_attr a; memset(&a, 0, sizeof a); a.size = sizeof a; a.type = PERF_TYPE_SOFTWARE; a.config = PERF_COUNT_SW_CPU_CLOCK; a.exclude_kernel = 1; return r(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0)); }
    if (!strcmp(op, "userfaultfd")) return r(syscall(SYS_userfaultfd, O_CLOEXEC));
    if (!strcmp(op, "socket_netlink")) return r(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
    if (!strcmp(op, "socket_packet")) return r(socket(AF_PACKET, SOCK_RAW, 0));
    if (!strcmp(op, "socket_vsock")) return r(socket(40 /*AF_VSOCK*/, SOCK_STREAM, 0));
    if (!strcmp(op, "socket_alg")) return r(socket(38 /*AF_ALG*/, SOCK_SEQPACKET, 0));
    if (!strcmp(op, "socket_netlink_highbits")) return r(syscall(SYS_socket, (long)AF_NETLINK | (1L << 32), SOCK_RAW, 0));
    if (!strcmp(op, "socketpair_netlink")) { int sv[2]; return r(socketpair(AF_NETLINK, SOCK_RAW, 0, sv)); }
    if (!strcmp(op, "open_by_handle_at")) { char h[128] = {0}; ((unsigned *)h)[0] = 8; return r(syscall(SYS_open_by_handle_at, AT_FDCWD, h, O_RDONLY)); }
    if (!strcmp(op, "name_to_handle_at")) { char h[128] = {0}; int m; ((unsigned *)h)[0] = 64; return r(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", h, &m, 0)); }
    if (!strcmp(op, "syslog")) return r(klogctl(3 /*READ_ALL*/, malloc(4096), 4096));
    if (!strcmp(op, "kexec_load")) return r(syscall(SYS_kexec_load, 0, 0, 0, 0));
    if (!strcmp(op, "init_module")) return r(syscall(SYS_init_module, "", 0, ""));
    if (!strcmp(op, "personality")) return r(personality(ADDR_NO_RANDOMIZE));
    if (!strcmp(op, "x32_getpid")) return r(syscall(0x40000000 | SYS_getpid));
    if (!strcmp(op, "i386_getpid")) {
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");
        return ret < 0 ? ret : 0;
    }
    if (!strcmp(op, "tiocsti")) { char c = 'x'; return r(ioctl(0, TIOCSTI, &c)); }
    if (!strcmp(op, "tiocsti_highbits")) { char c = 'x'; return r(syscall(SYS_ioctl, 0, (long)TIOCSTI | (1L << 32), &c)); }
    if (!strcmp(op, "tioclinux")) { char sub = 2; /* TIOCL_SETSEL */ return r(ioctl(0, TIOCLINUX, &sub)); }
    /* Legitimate operations that must keep working. */
    if (!strcmp(op, "fork")) { pid_t c = fork(); if (c == 0) _exit(0); if (c < 0) return -errno; waitpid(c, 0, 0); return 0; }
    if (!strcmp(op, "socket_unix")) return r(socket(AF_UNIX, SOCK_STREAM, 0));
    if (!strcmp(op, "socket_inet")) return r(socket(AF_INET, SOCK_STREAM, 0));
    if (!strcmp(op, "socket_inet6")) return r(socket(AF_INET6, SOCK_DGRAM, 0));
    if (!strcmp(op, "personality_query")) return r(personality(0xffffffff));
    fprintf(stderr, "unknown op %s\n", op);
    return -EINVAL;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        fflush(stdout);
        int p[2];
        if (pipe(p)) return 2;
        pid_t c = fork();
        if (c == 0) {
            close(p[0]);
            long rc = try_op(argv[i]);
            if (write(p[1], &rc, sizeof rc) != sizeof rc) _exit(3);
            _exit(0);
        }
        close(p[1]);
        long rc = 1;
        ssize_t n = read(p[0], &rc, sizeof rc);
        close(p[0]);
        int st;
        waitpid(c, &st, 0);
        if (n != sizeof rc && WIFSIGNALED(st)) printf("%s=signal:%d\n", argv[i], WTERMSIG(st));
        else if (n != sizeof rc) printf("%s=lost\n", argv[i]);
        else if (rc == 0) printf("%s=ok\n", argv[i]);
        else printf("%s=%s\n", argv[i], strerrorname_np((int)-rc));
    }
    return 0;
}
