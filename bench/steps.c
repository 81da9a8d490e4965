// Kernel steps of a namespace sandbox, each timed on its own (bench/spawn.sh
// builds and runs this): what no sandbox of this shape can get below here.
//
//   cc -O2 -o steps bench/steps.c && ./steps [rounds]
//
// Per round: fork+wait, clone with each namespace flag alone (with a new
// user namespace), all of them at once; inside a new user+mount namespace:
// the uid/gid maps from outside, a tmpfs mount, ten read-only bind mounts,
// pivot_root, a fresh /proc, detaching the old root; then a Landlock ruleset
// with ten rules, a 150-instruction seccomp filter, and a fork+exec of
// /bin/true. Medians in microseconds.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp);
  return v[n / 2];
}

// clone(flags) of a child that exits at once; returns the time to reap it.
static double clone_exit(int flags) {
  double t = now_us();
  pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) return -1;
  if (pid == 0) _exit(0);
  waitpid(pid, 0, 0);
  return now_us() - t;
}

enum { MOUNT_TMPFS, BINDS, PIVOT, PROC, DETACH, LANDLOCK, SECCOMP, EXEC, INNER };
static const char *inner_names[INNER] = {"tmpfs mount", "10 ro bind mounts", "pivot_root",
                                         "mount /proc (new pid ns)", "detach the old root",
                                         "landlock 10 rules", "seccomp 150 insns", "fork+exec /bin/true"};

// In a child in new user, mount and pid namespaces: time each rootfs step.
static int inner(int out, int go_fd) {
  double d[INNER] = {0}, t;
  const char *dirs[10] = {"/usr", "/etc", "/usr/bin", "/usr/lib", "/usr/sbin",
                          "/usr/share", "/usr/include", "/usr/local", "/opt", "/var"};
  // The parent has written our uid/gid maps (so files can be made) when this byte comes.
  char go;
  if (read(go_fd, &go, 1) != 1) return 1;
  if (mount(0, "/", 0, MS_REC | MS_PRIVATE, 0)) return 1;
  t = now_us();
  if (mount("steps", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")) return 2;
  d[MOUNT_TMPFS] = now_us() - t;
  char path[256];
  t = now_us();
  for (int i = 0; i < 10; i++) {
    snprintf(path, sizeof path, "/tmp/%d", i);
    mkdir(path, 0755);
    if (mount(dirs[i], path, 0, MS_BIND | MS_REC, 0)) continue;
    mount(0, path, 0, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, 0);
  }
  d[BINDS] = now_us() - t;
  mkdir("/tmp/proc", 0755);
  mkdir("/tmp/old", 0700);
  t = now_us();
  if (chdir("/tmp")) return 3;
  if (syscall(SYS_pivot_root, ".", "old") || chdir("/")) return 3;
  d[PIVOT] = now_us() - t;
  t = now_us(); // (proc needs the old root's /proc still visible)
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0)) return 4;
  d[PROC] = now_us() - t;
  t = now_us();
  if (umount2("/old", MNT_DETACH)) return 3;
  d[DETACH] = now_us() - t;
  t = now_us();
  struct landlock_ruleset_attr ra = {.handled_access_fs = LANDLOCK_ACCESS_FS_READ_FILE |
                                                          LANDLOCK_ACCESS_FS_READ_DIR |
                                                          LANDLOCK_ACCESS_FS_WRITE_FILE |
                                                          LANDLOCK_ACCESS_FS_EXECUTE};
  int rs = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof ra, 0);
  for (int i = 0; rs >= 0 && i < 10; i++) {
    snprintf(path, sizeof path, "/%d", i);
    struct landlock_path_beneath_attr pb = {.allowed_access = ra.handled_access_fs,
                                            .parent_fd = open(path, O_PATH | O_CLOEXEC)};
    syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
    close(pb.parent_fd);
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (rs >= 0) syscall(SYS_landlock_restrict_self, rs, 0);
  d[LANDLOCK] = now_us() - t;
  struct sock_filter f[150];
  for (int i = 0; i < 149; i++) f[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0);
  f[149] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {.len = 150, .filter = f};
  t = now_us();
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog)) return 5;
  d[SECCOMP] = now_us() - t;
  t = now_us();
  pid_t p = fork();
  if (p == 0) {
    execl("/0/bin/true", "true", (char *)0);
    _exit(127);
  }
  waitpid(p, 0, 0);
  d[EXEC] = now_us() - t;
  return write(out, d, sizeof d) == sizeof d ? 0 : 6;
}

// Map uid and gid 0 inside to ours outside (as the supervisor does).
static void write_maps(pid_t pid) {
  const char *files[3] = {"uid_map", "setgroups", "gid_map"};
  char path[64], text[64];
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, files[i]);
    if (i == 1) snprintf(text, sizeof text, "deny");
    else snprintf(text, sizeof text, "0 %d 1", i == 0 ? (int)getuid() : (int)getgid());
    int fd = open(path, O_WRONLY);
    if (fd < 0) continue;
    if (write(fd, text, strlen(text)) < 0) perror(path);
    close(fd);
  }
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100;
  if (n < 1) n = 1;
  struct {
    const char *name;
    int flags;
  } clones[] = {
      {"fork (no namespace)", 0},
      {"clone NEWUSER", CLONE_NEWUSER},
      {"clone NEWUSER|NEWNS", CLONE_NEWUSER | CLONE_NEWNS},
      {"clone NEWUSER|NEWNET", CLONE_NEWUSER | CLONE_NEWNET},
      {"clone NEWUSER|NEWPID", CLONE_NEWUSER | CLONE_NEWPID},
      {"clone NEWUSER|NEWIPC|NEWUTS", CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWUTS},
      {"clone NEWUSER|NEWCGROUP", CLONE_NEWUSER | CLONE_NEWCGROUP},
      {"clone all seven", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC |
                              CLONE_NEWUTS | CLONE_NEWCGROUP},
  };
  int nc = sizeof clones / sizeof clones[0];
  double *v = calloc((size_t)n * (nc + INNER), sizeof(double));
  if (!v) return 1;
  for (int r = 0; r < n; r++) {
    for (int c = 0; c < nc; c++) v[c * n + r] = clone_exit(clones[c].flags);
    int fds[2], go[2];
    if (pipe(fds) || pipe(go)) return 1;
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(inner(fds[1], go[0]));
    close(fds[1]);
    close(go[0]);
    write_maps(pid);
    if (write(go[1], "g", 1) != 1) return 1;
    close(go[1]);
    double d[INNER];
    int st = 0;
    ssize_t got = read(fds[0], d, sizeof d);
    close(fds[0]);
    waitpid(pid, &st, 0);
    if (got != (ssize_t)sizeof d) {
      fprintf(stderr, "steps: the rootfs child failed (status %d)\n", WEXITSTATUS(st));
      return 1;
    }
    for (int i = 0; i < INNER; i++) v[(nc + i) * n + r] = d[i];
  }
  for (int c = 0; c < nc; c++) printf("  %-30s %8.1f us\n", clones[c].name, median(v + c * n, n));
  for (int i = 0; i < INNER; i++) printf("  %-30s %8.1f us\n", inner_names[i], median(v + (nc + i) * n, n));
  return 0;
}
