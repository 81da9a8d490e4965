// The floor: the sandbox clawcage builds, and nothing else, in plain C
// (bench/spawn.sh builds and times it beside clawcage and bwrap). No policy
// parsing, no mount planning, no store, no audit unless --audit, no cgroups,
// one process hand-off fewer than clawcage (the command's exit is not relayed
// through a control socket): the least any implementation of this sandbox
// shape costs on this machine. If this floor is above 0.6x bwrap, the spawn
// goal is out of reach for any implementation of the shape.
//
//   cc -O2 -o floor bench/floor.c
//   floor [--audit STATEDIR] WORKSPACE [-- CMD ARG...]   (CMD: /bin/true)
//   floor --print-filter                                 (seccomp length)
//
// The shape, in clawcage's order (crates/sandbox/src/{supervisor,init,
// rootfs,landlock,seccomp,caps}.rs):
//   parent: socketpair; clone(NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS);
//     uid/gid maps from outside (as root on a root-owned workspace: the
//     sandbox's root is the isolated id 0x7fff0000 and the workspace an
//     idmapped tree, as clawcage does); release the child; wait; exit with
//     the command's status.
//   child (pid 1): PDEATHSIG, non-dumpable, uid/gid 0, no groups, its own
//     cgroup namespace, hostname; root: / slave, tmpfs root, pivot_root,
//     symlinks and read-only binds of the default profile's system dirs
//     (a symlinked dir is a symlink plus a bind of its target, as
//     mountplan.rs resolves it), /proc (masked entries, read-only sys, bus,
//     fs, irq), minimal /dev with /dev/shm, tmpfs /tmp and /home, the
//     workspace read-write at its own path, the old root detached, / read-
//     only; loopback up; setsid; descriptors closed; RLIMIT_CORE/FSIZE;
//     capabilities gone (bounding, ambient, securebits, capset); no_new_privs;
//     Landlock (the newest ABI the kernel has, up to clawcage's V6 rights);
//     the same seccomp program as seccomp.rs compiles (same table, same
//     layout, same length); the restrictions checked in /proc/self/status;
//     then vfork+exec of the command, wait, exit with its status.
// --audit: before the clone, one ~300-byte line appended to
// STATEDIR/audit.jsonl and fdatasync'd; after the command, another: the
// least a durable audit trail costs (one record durable before the effect,
// one after).
// Every step is checked: a failing one prints the step and errno and exits
// 125, so that no layer is ever silently skipped.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef __x86_64__
#error "floor.c builds the x86_64 seccomp program only"
#endif

// Newer syscall numbers (x86_64; from 424 on shared by all architectures).
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_fspick
#define SYS_fspick 433
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#define SYS_open_tree_attr_ 467

#define MOUNT_ATTR_RDONLY_ 0x1ULL
#define MOUNT_ATTR_NOSUID_ 0x2ULL
#define MOUNT_ATTR_NODEV_ 0x4ULL
#define MOUNT_ATTR_IDMAP_ 0x00100000ULL
#define READ_ONLY (MOUNT_ATTR_RDONLY_ | MOUNT_ATTR_NOSUID_ | MOUNT_ATTR_NODEV_)
#define ISOLATED_ID 0x7fff0000u
#define DISK (1ULL << 30) // the default profile's disk limit: /tmp, /home, /dev/shm sizes
#define FSIZE_SLACK (1ULL << 20)

static const char *sysdirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"};
#define NSYS (sizeof sysdirs / sizeof sysdirs[0])

// --- errors ---------------------------------------------------------------------
static void die(const char *step, const char *path) {
  int e = errno;
  fprintf(stderr, "floor: %s%s%s: %s (errno %d)\n", step, path ? " " : "", path ? path : "", strerror(e), e);
  _exit(125);
}
static void fail(const char *step, const char *what) {
  fprintf(stderr, "floor: %s: %s\n", step, what);
  _exit(125);
}
#define CK(expr, step, path) \
  do {                       \
    if ((expr) < 0) die(step, path); \
  } while (0)

// --- seccomp: the program seccomp.rs compiles from seccomp/table.rs -------------
enum { ANYBIT, IN, NOTIN };
struct check {
  int kind, arg;
  const uint32_t *v;
  int n;
};
struct sgroup {
  uint32_t nr;
  struct check c[2];
  int nc;
};
static const uint32_t TIOC_A[] = {0x5412 /*TIOCSTI*/, 0x541c /*TIOCLINUX*/}, TIOC_B[] = {0x5423 /*TIOCSETD*/};
static const uint32_t SETID[] = {S_ISUID | S_ISGID};
static const uint32_t NSF[] = {CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                               CLONE_NEWNET | CLONE_NEWCGROUP};
static const uint32_t UNSF[] = {CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                CLONE_NEWNET | CLONE_NEWCGROUP | 0x80 /*CLONE_NEWTIME*/};
static const uint32_t FAMS[] = {AF_UNIX, AF_INET, AF_INET6};
static const uint32_t PERSONAS[] = {0, 8, 0x20000, 0x20008, 0xffffffff};
#define SETID_RULE(name, a) {name, {{ANYBIT, a, SETID, 1}}, 1}
// Argument-checked groups, in the table's order.
static const struct sgroup checked[] = {
    {SYS_ioctl, {{IN, 1, TIOC_A, 2}, {IN, 1, TIOC_B, 1}}, 2},
    SETID_RULE(SYS_openat, 3),
    SETID_RULE(SYS_open, 2),
    SETID_RULE(SYS_creat, 1),
    SETID_RULE(SYS_chmod, 1),
    SETID_RULE(SYS_fchmod, 1),
    SETID_RULE(SYS_fchmodat, 2),
    SETID_RULE(SYS_fchmodat2, 2),
    SETID_RULE(SYS_mknod, 1),
    SETID_RULE(SYS_mknodat, 2),
    {SYS_clone, {{ANYBIT, 0, NSF, 1}}, 1},
    {SYS_unshare, {{ANYBIT, 0, UNSF, 1}}, 1},
    {SYS_socket, {{NOTIN, 0, FAMS, 3}}, 1},
    {SYS_socketpair, {{NOTIN, 0, FAMS, 3}}, 1},
    {SYS_personality, {{NOTIN, 0, PERSONAS, 5}}, 1},
};
// Plainly refused calls, in the table's order; the first two get ENOSYS.
static const uint32_t plain[] = {
    SYS_clone3, SYS_openat2, SYS_setns, SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_pidfd_getfd,
    SYS_keyctl, SYS_add_key, SYS_request_key, SYS_bpf, SYS_perf_event_open, SYS_userfaultfd, SYS_io_uring_setup,
    SYS_io_uring_enter, SYS_io_uring_register, SYS_mount, SYS_umount2, SYS_fsopen, SYS_fsconfig, SYS_fsmount,
    SYS_fspick, SYS_move_mount, SYS_open_tree, SYS_open_tree_attr_, SYS_mount_setattr, SYS_pivot_root, SYS_chroot,
    SYS_kexec_load, SYS_kexec_file_load, SYS_init_module, SYS_finit_module, SYS_delete_module,
    SYS_open_by_handle_at, SYS_name_to_handle_at, SYS_syslog, SYS_acct, SYS_swapon, SYS_swapoff, SYS_reboot,
    SYS_settimeofday, SYS_clock_settime, SYS_adjtimex, SYS_clock_adjtime, SYS_quotactl, SYS_quotactl_fd,
    SYS_lookup_dcookie, SYS_uselib, SYS_vhangup, SYS_nfsservctl, SYS_iopl, SYS_ioperm, SYS_fanotify_init};
#define NPLAIN (int)(sizeof plain / sizeof plain[0])
#define NENOSYS 2

static struct sock_filter prog[256];
static int plen;
static void emit(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  if (plen >= 256) fail("seccomp", "program too long");
  prog[plen++] = (struct sock_filter){code, jt, jf, k};
}
#define LD (BPF_LD | BPF_W | BPF_ABS)
#define JEQ (BPF_JMP | BPF_JEQ | BPF_K)
#define JGE (BPF_JMP | BPF_JGE | BPF_K)
#define JSET (BPF_JMP | BPF_JSET | BPF_K)
#define RET (BPF_RET | BPF_K)
#define EPERM_RET (SECCOMP_RET_ERRNO | EPERM)
#define ENOSYS_RET (SECCOMP_RET_ERRNO | ENOSYS)

static void compile(void) {
  plen = 0;
  emit(LD, 4, 0, 0); // arch
  emit(JEQ, 0xc000003e /*AUDIT_ARCH_X86_64*/, 1, 0);
  emit(RET, EPERM_RET, 0, 0);
  emit(LD, 0, 0, 0); // nr
  emit(JGE, 0x40000000, 0, 2); // x32, but -1 is left to the kernel
  emit(JEQ, 0xffffffff, 1, 0);
  emit(RET, EPERM_RET, 0, 0);
  for (size_t g = 0; g < sizeof checked / sizeof checked[0]; g++) {
    const struct sgroup *gr = &checked[g];
    int at = plen;
    emit(JEQ, gr->nr, 0, 0); // jf patched to skip the body
    for (int i = 0; i < gr->nc; i++) {
      const struct check *c = &gr->c[i];
      emit(LD, 16 + 8 * c->arg, 0, 0); // low 32 bits of the argument
      if (c->kind == ANYBIT) {
        emit(JSET, c->v[0], 0, 1);
      } else if (c->kind == IN) {
        for (int j = 0; j < c->n; j++)
          emit(JEQ, c->v[j], j + 1 == c->n ? 0 : c->n - 1 - j, j + 1 == c->n ? 1 : 0);
      } else {
        for (int j = 0; j < c->n; j++) emit(JEQ, c->v[j], c->n - j, 0);
      }
      emit(RET, EPERM_RET, 0, 0);
    }
    emit(RET, SECCOMP_RET_ALLOW, 0, 0);
    prog[at].jf = (uint8_t)(plen - at - 1);
  }
  // One compare each, to a shared ret: ENOSYS first (clone3 comes first), then EPERM.
  for (int i = 0; i < NPLAIN; i++) emit(JEQ, plain[i], (uint8_t)(NPLAIN - i + (i < NENOSYS ? 0 : 1)), 0);
  emit(RET, SECCOMP_RET_ALLOW, 0, 0);
  emit(RET, ENOSYS_RET, 0, 0);
  emit(RET, EPERM_RET, 0, 0);
}

// --- small helpers --------------------------------------------------------------
static char pathbuf[PATH_MAX];
static const char *old(const char *p) { // the host path under the old root
  snprintf(pathbuf, sizeof pathbuf, "/oldroot%s", p);
  return pathbuf;
}

static void set_attr(const char *path, uint64_t set, int dirfd, int userns) {
  struct {
    uint64_t set, clr, prop, userns;
  } a = {set, 0, 0, (uint64_t)(userns < 0 ? 0 : userns)};
  CK(syscall(SYS_mount_setattr, dirfd, path, *path ? 0 : AT_EMPTY_PATH, &a, sizeof a), "mount_setattr", path);
}

static void mkdir_p(const char *path, mode_t mode) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1;; s++) {
    if (*s == '/' || !*s) {
      char c = *s;
      *s = 0;
      if (mkdir(p, mode) < 0 && errno != EEXIST) die("mkdir", p);
      *s = c;
      if (!c) break;
    }
  }
}

static int exists(const char *p, int want_dir) {
  struct stat st;
  if (lstat(p, &st) < 0) return 0;
  return want_dir ? S_ISDIR(st.st_mode) : 1;
}

static void bind_set(const char *src, const char *dst, uint64_t attrs) {
  CK(mount(src, dst, 0, MS_BIND, 0), "bind", dst);
  set_attr(dst, attrs, AT_FDCWD, -1);
}

static void tmpfs(const char *path, unsigned long long size, unsigned mode, unsigned long extra) {
  char data[64];
  snprintf(data, sizeof data, "size=%llu,mode=%o", size, mode);
  CK(mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | extra, data), "mount tmpfs", path);
}

static void touch(const char *p) {
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  CK(fd, "create mount point", p);
  close(fd);
}

// --- the plan (what mountplan.rs resolves the default profile to) ---------------
enum { OP_SYMLINK, OP_BIND, OP_PROC, OP_DEV, OP_TMPFS };
struct op {
  int kind, depth;
  char path[PATH_MAX], target[PATH_MAX];
  int writable;
  unsigned long long size;
  unsigned mode;
};
static struct op ops[32];
static int nops;

static int depth(const char *p) {
  int d = 0;
  for (const char *s = p; *s; s++)
    if (*s == '/' && s[1] && s[1] != '/') d++;
  return d;
}

static struct op *add_op(int kind, const char *path) {
  struct op *o = &ops[nops++];
  memset(o, 0, sizeof *o);
  o->kind = kind;
  snprintf(o->path, sizeof o->path, "%s", path);
  o->depth = depth(path);
  return o;
}

// Symlinks, then binds (each path once, canonical), then the sandbox's own
// mounts; sorted by depth, fixed mounts after the binds of their depth.
static void plan(const char *ws) {
  char canon[16][PATH_MAX];
  int nb = 0;
  for (size_t i = 0; i < NSYS; i++) {
    struct stat st;
    if (lstat(sysdirs[i], &st) < 0) continue;
    if (S_ISLNK(st.st_mode)) {
      struct op *o = add_op(OP_SYMLINK, sysdirs[i]);
      ssize_t n = readlink(sysdirs[i], o->target, sizeof o->target - 1);
      CK(n, "readlink", sysdirs[i]);
      o->target[n] = 0;
    }
    char c[PATH_MAX];
    if (!realpath(sysdirs[i], c)) continue;
    int dup = 0;
    for (int j = 0; j < nb; j++) dup |= !strcmp(canon[j], c);
    if (!dup) snprintf(canon[nb++], PATH_MAX, "%s", c);
  }
  for (int j = 0; j < nb; j++) add_op(OP_BIND, canon[j]);
  add_op(OP_BIND, ws)->writable = 1;
  add_op(OP_PROC, "/proc");
  add_op(OP_DEV, "/dev");
  struct op *t = add_op(OP_TMPFS, "/tmp");
  t->size = DISK, t->mode = 01777;
  t = add_op(OP_TMPFS, "/home");
  t->size = DISK, t->mode = 0755;
  // A stable insertion sort by (depth, fixed-after-binds).
  for (int i = 1; i < nops; i++) {
    struct op x = ops[i];
    int kx = x.kind >= OP_PROC, j = i - 1;
    while (j >= 0 && (ops[j].depth > x.depth || (ops[j].depth == x.depth && (ops[j].kind >= OP_PROC) > kx))) {
      ops[j + 1] = ops[j];
      j--;
    }
    ops[j + 1] = x;
  }
}

// --- the root file system (rootfs.rs) --------------------------------------------
static const char *proc_masked_files[] = {"kcore",    "keys",      "latency_stats", "timer_list",
                                          "timer_stats", "sched_debug", "kallsyms",   "kpagecount",
                                          "kpageflags", "kpagecgroup", "config.gz",  "sysrq-trigger"};
static const char *proc_masked_dirs[] = {"acpi", "asound", "scsi", "firmware", "driver"};
static const char *proc_read_only[] = {"sys", "bus", "fs", "irq"};
static const char *devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
#define N(a) (sizeof a / sizeof a[0])

static void do_proc(void) {
  char p[64];
  mkdir_p("/proc", 0755);
  CK(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0), "mount proc", "/proc");
  for (size_t i = 0; i < N(proc_masked_files); i++) {
    snprintf(p, sizeof p, "/proc/%s", proc_masked_files[i]);
    if (exists(p, 0)) bind_set("/.clawcage-empty", p, READ_ONLY);
  }
  for (size_t i = 0; i < N(proc_masked_dirs); i++) {
    snprintf(p, sizeof p, "/proc/%s", proc_masked_dirs[i]);
    if (exists(p, 1))
      CK(mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0755,nr_inodes=1"),
         "mask directory", p);
  }
  for (size_t i = 0; i < N(proc_read_only); i++) {
    snprintf(p, sizeof p, "/proc/%s", proc_read_only[i]);
    if (exists(p, 0)) bind_set(p, p, READ_ONLY);
  }
}

static void do_dev(void) {
  char p[64], o[80];
  mkdir_p("/dev", 0755);
  tmpfs("/dev", 64 * 1024, 0755, MS_NOEXEC);
  for (size_t i = 0; i < N(devices); i++) {
    snprintf(p, sizeof p, "/dev/%s", devices[i]);
    snprintf(o, sizeof o, "/oldroot/dev/%s", devices[i]);
    touch(p);
    CK(mount(o, p, 0, MS_BIND, 0), "bind", p);
    set_attr(p, MOUNT_ATTR_NOSUID_, AT_FDCWD, -1);
  }
  const char *links[][2] = {{"fd", "/proc/self/fd"},
                            {"stdin", "/proc/self/fd/0"},
                            {"stdout", "/proc/self/fd/1"},
                            {"stderr", "/proc/self/fd/2"},
                            {"ptmx", "pts/ptmx"}};
  for (size_t i = 0; i < N(links); i++) {
    snprintf(p, sizeof p, "/dev/%s", links[i][0]);
    CK(symlink(links[i][1], p), "symlink", p);
  }
  CK(mkdir("/dev/shm", 0755), "mkdir", "/dev/shm");
  tmpfs("/dev/shm", DISK, 01777, 0);
  CK(mkdir("/dev/pts", 0755), "mkdir", "/dev/pts");
  set_attr("/dev", MOUNT_ATTR_RDONLY_ | MOUNT_ATTR_NOSUID_, AT_FDCWD, -1);
}

static void build_root(int ws_tree, const char *ws) {
  CK(mount(0, "/", 0, MS_SLAVE | MS_REC, 0), "make / a slave mount", "/");
  CK(mount("clawcage", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m"), "mount root tmpfs", "/tmp");
  CK(chdir("/tmp"), "chdir", "/tmp");
  CK(mkdir("oldroot", 0700), "mkdir", "/tmp/oldroot");
  CK(syscall(SYS_pivot_root, ".", "oldroot"), "pivot_root", "/tmp");
  CK(chdir("/"), "chdir", "/");
  int fd = open("/.clawcage-empty", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
  CK(fd, "create", "/.clawcage-empty");
  close(fd);
  for (int i = 0; i < nops; i++) {
    struct op *o = &ops[i];
    switch (o->kind) {
    case OP_SYMLINK:
      if (!exists(o->path, 0)) CK(symlink(o->target, o->path), "symlink", o->path);
      break;
    case OP_BIND:
      if (!exists(o->path, 0)) mkdir_p(o->path, 0755);
      if (o->writable && ws_tree >= 0 && !strcmp(o->path, ws)) {
        CK(syscall(SYS_move_mount, ws_tree, "", AT_FDCWD, o->path, 4 /*MOVE_MOUNT_F_EMPTY_PATH*/),
           "attach idmapped bind", o->path);
        close(ws_tree);
      } else {
        CK(mount(old(o->path), o->path, 0, MS_BIND, 0), "bind", o->path);
      }
      set_attr(o->path, (o->writable ? 0 : MOUNT_ATTR_RDONLY_) | MOUNT_ATTR_NOSUID_ | MOUNT_ATTR_NODEV_, AT_FDCWD, -1);
      break;
    case OP_PROC:
      do_proc();
      break;
    case OP_DEV:
      do_dev();
      break;
    case OP_TMPFS:
      mkdir_p(o->path, 0755);
      tmpfs(o->path, o->size, o->mode, 0);
      if (!strcmp(o->path, "/home")) {
        CK(mkdir("/home/sandbox", 0700), "mkdir", "/home/sandbox");
        CK(chmod("/home/sandbox", 0700), "chmod", "/home/sandbox");
      }
      break;
    }
  }
  CK(umount2("/oldroot", MNT_DETACH), "detach old root", "/oldroot");
  CK(rmdir("/oldroot"), "rmdir", "/oldroot");
  set_attr("/", READ_ONLY, AT_FDCWD, -1);
}

// --- Landlock (landlock.rs) ---------------------------------------------------------
#define LL_EXECUTE (1ULL << 0)
#define LL_WRITE_FILE (1ULL << 1)
#define LL_READ_FILE (1ULL << 2)
#define LL_READ_DIR (1ULL << 3)
#define LL_REFER (1ULL << 13)
#define LL_TRUNCATE (1ULL << 14)
#define LL_IOCTL_DEV (1ULL << 15)

static void landlock(void) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /*LANDLOCK_CREATE_RULESET_VERSION*/);
  CK(abi, "landlock ABI", 0);
  if (abi > 6) abi = 6; // clawcage asks for V6's rights; 7+ adds no access rights
  uint64_t all = (1ULL << 13) - 1;
  if (abi >= 2) all |= LL_REFER;
  if (abi >= 3) all |= LL_TRUNCATE;
  if (abi >= 5) all |= LL_IOCTL_DEV;
  uint64_t read = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR;
  struct {
    uint64_t fs, net, scoped;
  } ra = {all, 0, abi >= 6 ? 3 /*ABSTRACT_UNIX_SOCKET|SIGNAL*/ : 0};
  int rs = (int)syscall(SYS_landlock_create_ruleset, &ra, abi >= 6 ? 24 : abi >= 4 ? 16 : 8, 0);
  CK(rs, "landlock_create_ruleset", 0);
  struct {
    const char *path;
    uint64_t access;
  } rules[40];
  int n = 0;
  rules[n++] = (typeof(rules[0])){"/", LL_READ_DIR};
  for (int i = 0; i < nops; i++) {
    struct op *o = &ops[i];
    if (o->kind == OP_BIND) rules[n++] = (typeof(rules[0])){o->path, o->writable ? all : read};
    if (o->kind == OP_TMPFS) rules[n++] = (typeof(rules[0])){o->path, all};
    if (o->kind == OP_PROC) rules[n++] = (typeof(rules[0])){"/proc", read | LL_WRITE_FILE};
    if (o->kind == OP_DEV) {
      rules[n++] = (typeof(rules[0])){"/dev", (read | LL_WRITE_FILE | LL_IOCTL_DEV) & all};
      rules[n++] = (typeof(rules[0])){"/dev/shm", all};
    }
  }
  for (int i = 0; i < n; i++) {
    struct __attribute__((packed)) {
      uint64_t allowed;
      int32_t parent_fd;
    } pb = {rules[i].access, open(rules[i].path, O_PATH | O_CLOEXEC)};
    CK(pb.parent_fd, "landlock open", rules[i].path);
    CK(syscall(SYS_landlock_add_rule, rs, 1 /*LANDLOCK_RULE_PATH_BENEATH*/, &pb, 0), "landlock_add_rule",
       rules[i].path);
    close(pb.parent_fd);
  }
  CK(syscall(SYS_landlock_restrict_self, rs, 0), "landlock_restrict_self", 0);
  close(rs);
}

// --- capabilities (caps.rs) ---------------------------------------------------------
static void drop_caps(void) {
  char buf[16] = {0};
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  CK(fd, "open", "/proc/sys/kernel/cap_last_cap");
  CK(read(fd, buf, sizeof buf - 1), "read", "/proc/sys/kernel/cap_last_cap");
  close(fd);
  int last = atoi(buf);
  for (int c = 0; c <= last; c++) CK(prctl(PR_CAPBSET_DROP, c, 0, 0, 0), "PR_CAPBSET_DROP", 0);
  CK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "PR_CAP_AMBIENT_CLEAR_ALL", 0);
  CK(prctl(PR_SET_SECUREBITS, 0xef /*NOROOT|NO_SETUID_FIXUP|KEEP_CAPS_LOCKED|NO_CAP_AMBIENT_RAISE, locked*/, 0, 0,
           0),
     "PR_SET_SECUREBITS", 0);
  struct {
    uint32_t version;
    int pid;
  } h = {0x20080522, 0};
  uint32_t data[6] = {0};
  CK(syscall(SYS_capset, &h, data), "capset", 0);
}

static void verify(void) {
  char s[4096];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  CK(fd, "open", "/proc/self/status");
  ssize_t n = read(fd, s, sizeof s - 1);
  CK(n, "read", "/proc/self/status");
  close(fd);
  s[n] = 0;
  const char *want[] = {"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
                        "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1",
                        "Seccomp:\t2"};
  for (size_t i = 0; i < N(want); i++)
    if (!strstr(s, want[i])) fail("verify restrictions", want[i]);
}

// --- the child: pid 1 of the new pid namespace (init.rs) --------------------------
static int child(int ctl, const char *ws, char **cmd, int clear_groups) {
  CK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "PR_SET_PDEATHSIG", 0);
  // Wait for the maps (and the idmapped workspace tree, if any).
  char go;
  int tree = -1;
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {&go, 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t got = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC);
  CK(got, "wait for parent", 0);
  if (got != 1) _exit(125);
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (c && c->cmsg_type == SCM_RIGHTS) memcpy(&tree, CMSG_DATA(c), sizeof tree);
  CK(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE", 0);
  CK(setresgid(0, 0, 0), "setresgid", 0);
  CK(setresuid(0, 0, 0), "setresuid", 0);
  if (clear_groups) CK(setgroups(0, NULL), "setgroups", 0);
  CK(unshare(CLONE_NEWCGROUP), "unshare(CLONE_NEWCGROUP)", 0);
  CK(sethostname("clawcage", 8), "sethostname", 0);

  build_root(tree, ws);

  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CK(s, "socket", "lo");
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "lo");
  CK(ioctl(s, SIOCGIFFLAGS, &ifr), "SIOCGIFFLAGS", "lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  CK(ioctl(s, SIOCSIFFLAGS, &ifr), "SIOCSIFFLAGS", "lo");
  close(s);

  CK(setsid(), "setsid", 0);
  CK(syscall(SYS_close_range, 3, ~0U, 0), "close_range", 0); // the control socket too: nothing to report
  struct rlimit core = {0, 0}, fsize = {DISK + FSIZE_SLACK, DISK + FSIZE_SLACK};
  CK(setrlimit(RLIMIT_CORE, &core), "setrlimit", "RLIMIT_CORE");
  CK(setrlimit(RLIMIT_FSIZE, &fsize), "setrlimit", "RLIMIT_FSIZE");
  drop_caps();
  CK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS", 0);
  landlock();
  struct sock_fprog fp = {(unsigned short)plen, prog};
  CK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fp), "seccomp", 0);
  verify();

  // The command: its own session, the workspace as cwd (spawn.rs).
  static char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/sandbox", "LANG=C.UTF-8", 0};
  volatile int err = 0;
  pid_t pid = vfork();
  if (pid == 0) {
    if (setsid() < 0 || chdir(ws) < 0) err = errno;
    else {
      execve(cmd[0], cmd, envp);
      err = errno;
    }
    _exit(127);
  }
  CK(pid, "vfork", 0);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) die("waitpid", 0);
  if (err) {
    errno = err;
    die("exec", cmd[0]);
  }
  _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

// --- the parent (supervisor.rs) ---------------------------------------------------------
static void write_file(pid_t pid, const char *name, const char *text) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, name);
  int fd = open(p, O_WRONLY | O_CLOEXEC);
  CK(fd, "open", p);
  if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die("write", p);
  close(fd);
}

// One record, durable before we go on (the least an audit trail costs).
static void record(int fd, const char *kind, const char *ws, const char *cmd, int status) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  char line[512];
  int n = snprintf(line, sizeof line,
                   "{\"ts\":\"%lld.%09ld\",\"kind\":\"%s\",\"sandbox\":\"floor-%d-%lld\",\"workspace\":\"%s\","
                   "\"argv\":[\"%s\"],\"profile\":\"default\",\"layers\":[\"userns\",\"mountns\",\"pidns\","
                   "\"netns\",\"landlock\",\"seccomp\",\"caps\"],\"status\":%d,\"prev\":"
                   "\"0000000000000000000000000000000000000000000000000000000000000000\"}",
                   (long long)t.tv_sec, t.tv_nsec, kind, (int)getpid(), (long long)t.tv_nsec, ws, cmd, status);
  while (n < 299) line[n++] = ' '; // ~300 bytes whatever the paths
  line[n++] = '\n';
  if (write(fd, line, n) != n) die("write audit record", kind);
  CK(fdatasync(fd), "fdatasync", "audit.jsonl");
}

int main(int argc, char **argv) {
  const char *state = 0, *wsarg = 0;
  char **cmd = 0;
  static char *deflt[] = {"/bin/true", 0};
  int i = 1;
  compile();
  if (argc == 2 && !strcmp(argv[1], "--print-filter")) {
    printf("%d\n", plen);
    return 0;
  }
  if (i + 1 < argc && !strcmp(argv[i], "--audit")) state = argv[i + 1], i += 2;
  if (i < argc) wsarg = argv[i++];
  if (i < argc && !strcmp(argv[i], "--") && i + 1 < argc) cmd = argv + i + 1;
  else if (i < argc) wsarg = 0;
  if (!wsarg) {
    fprintf(stderr, "usage: floor [--audit STATEDIR] WORKSPACE [-- CMD ARG...] | floor --print-filter\n");
    return 125;
  }
  if (!cmd) cmd = deflt;
  char ws[PATH_MAX];
  if (!realpath(wsarg, ws)) die("workspace", wsarg);
  plan(ws);

  int audit = -1;
  if (state) {
    if (mkdir(state, 0700) < 0 && errno != EEXIST) die("mkdir", state);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/audit.jsonl", state);
    audit = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    CK(audit, "open", p);
    record(audit, "sandbox_start", ws, cmd[0], -1);
  }

  // Who the sandbox's root is on the host (supervisor.rs identity()).
  uid_t uid = geteuid();
  gid_t gid = getegid();
  int unprivileged = uid != 0, idmap = 0;
  if (!unprivileged) {
    struct stat st;
    CK(stat(ws, &st), "stat", ws);
    if (st.st_uid != 0) uid = st.st_uid, gid = st.st_gid;
    else uid = gid = ISOLATED_ID, idmap = 1;
  }

  int sp[2];
  CK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), "socketpair", 0);
  fflush(0);
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                                            CLONE_NEWUTS | SIGCHLD,
                             0, 0, 0, 0);
  CK(pid, "clone with new user/mount/pid/net/ipc/uts namespaces", 0);
  if (pid == 0) {
    close(sp[0]);
    if (audit >= 0) close(audit);
    child(sp[1], ws, cmd, !unprivileged);
  }
  close(sp[1]);
  char map[64];
  if (unprivileged) write_file(pid, "setgroups", "deny");
  snprintf(map, sizeof map, "0 %u 1\n", uid);
  write_file(pid, "uid_map", map);
  snprintf(map, sizeof map, "0 %u 1\n", gid);
  write_file(pid, "gid_map", map);
  int tree = -1;
  if (idmap) { // an idmapped copy of the workspace: host root's files are the sandbox root's
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/ns/user", (int)pid);
    int ns = open(p, O_RDONLY | O_CLOEXEC);
    CK(ns, "open", p);
    tree = (int)syscall(SYS_open_tree, AT_FDCWD, ws, 1 /*OPEN_TREE_CLONE*/ | O_CLOEXEC);
    CK(tree, "open_tree", ws);
    set_attr("", MOUNT_ATTR_IDMAP_, tree, ns);
    close(ns);
  }
  char go = 'g';
  char cbuf[CMSG_SPACE(sizeof(int))] = {0};
  struct iovec iov = {&go, 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (tree >= 0) {
    m.msg_control = cbuf, m.msg_controllen = sizeof cbuf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &tree, sizeof tree);
  }
  CK(sendmsg(sp[0], &m, 0), "release the child", 0);
  if (tree >= 0) close(tree);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) die("waitpid", 0);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  if (audit >= 0) record(audit, "exec_end", ws, cmd[0], code);
  return code;
}
