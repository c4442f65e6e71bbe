"""Grading kernels forked from a template that has already imported ipykernel, NumPy and torch.

A grading kernel started the plain way (isolation.kernel_command: bubblewrap around a new
`python -m ipykernel_launcher`) pays, for every submission, Python's start, ipykernel's
import, and torch's and NumPy's when the notebook imports them: about 2.3 s of CPU of a
jacobian submission's 3.8 s, torch alone 1.8 s (benchmarks/RESULTS.md, the class section).
A template (`python -m rnngrading.kernelfork SOCKET`, one per grading process) imports them
once and forks one kernel per request, in a sandbox built fresh for that kernel.

Why not bubblewrap here: bubblewrap builds a sandbox and then execs a program, which starts
with nothing imported. A forked kernel must build its sandbox itself, after the fork and
without an exec. It builds the one bubblewrap builds for isolation.kernel_command, with the
same system calls: new mount, PID, network, IPC, UTS and cgroup namespaces (and a user
namespace for an ordinary user); a root of its own (a tmpfs, read-only once built) holding
the system's directories, the Python environment and the notebook's folder read-only, the
run folder and the kernel's home writable, a /tmp, /dev/shm and /dev of its own and a /proc
of its PID namespace; then a user id of its own (as root) or no capabilities (as an ordinary
user), no new privileges, the same rlimits, and PID 1 a small init that reaps, as
bubblewrap's. tests/test_kernelfork.py checks each of these from inside a forked kernel,
and tests/test_adversarial.py grades the hostile submissions through it.

The protocol: the kernel spec's launcher (launcher.py) connects to the
template's Unix socket (in a 0700 folder of the grading process's user; the template
accepts only that user), sends one JSON request with its stdin, stdout and stderr, and
waits; the reply is the kernel's exit status. If the launcher dies (nbclient kills it), the
kernel and everything in its namespace are killed. RNNCOURSE_KERNEL_FORK=0 turns the
templates off: kernels then start through bubblewrap, as before.
"""

import array
import atexit
import contextlib
import ctypes
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .zygote import run_and_exit

# What the assignments' notebooks import (matplotlib's pyplot about 0.8 s of CPU a kernel,
# with its font list), and what ipykernel imports as a kernel starts (its debugger brings
# debugpy's pydevd: about 0.15 s)
PRELOAD = ("numpy", "torch", "matplotlib.pyplot", "ipykernel.kernelapp", "ipykernel.debugger")
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what ipykernel sets
_SET_BY_IMPORTS = {}  # environment variables PRELOAD's imports set (pydevd sets one)
MAX_REQUEST = 1 << 20

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = (0x08000000, 0x10000000,
                                                           0x20000000, 0x40000000)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NAME = 1, 4, 15
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SYSCALLS = {"x86_64": {"pivot_root": 155, "capset": 126},
            "aarch64": {"pivot_root": 41, "capset": 91}}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# statvfs flags a bind mount keeps: an unprivileged user may not clear them
KEEP_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC))

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(RuntimeError):
    """A step of building a forked kernel's sandbox failed; the kernel never starts."""


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(errno)}")


def _mount(source, target, fstype=None, flags=0, data=None):
    def enc(text):
        return None if text is None else str(text).encode()

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source} on {target}")


def _prctl(option, arg):
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def _name(name):
    """This process's name in ps and /proc/PID/comm (its command line stays the template's)."""
    _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def _syscall(name, *args):
    number = SYSCALLS.get(platform.machine(), {}).get(name)
    if number is None:
        raise SandboxError(f"no {name} system call number for {platform.machine()}")
    return _libc.syscall(number, *args)


# ------------------------------------------------------------------ the sandbox


def _bind(source, target, read_only):
    """Bind `source` at `target` (made), read-only if asked, keeping the flags it must keep."""
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        Path(target).touch(mode=0o644)
    _mount(source, target, flags=MS_BIND | MS_REC)
    if read_only:
        kept = _kept_flags(source)
        for point in _mounts_under(target):  # each submount too, as bubblewrap does
            _mount(None, point, flags=MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | kept
                   | _kept_flags(point))


def _kept_flags(path):
    """The mount flags of `path`'s mount that a bind of it must keep."""
    keep = os.statvfs(path).f_flag
    return sum(ms_flag for st_flag, ms_flag in KEEP_FLAGS if keep & st_flag)


def _mounts_under(target):
    """The mount points at or under `target`, from /proc/self/mountinfo, outermost first."""
    target = target.rstrip("/")
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == target or point.startswith(target + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"))


def _build_root(spec, cwd):
    """In a new mount namespace, make spec['root'] the root: a tmpfs with what bubblewrap's
    kernel sandbox shows (isolation.bwrap_argv), then pivot into it."""
    from .isolation import SYSTEM_DIRS, _minimal

    limits = spec["limits"]
    tmp_bytes = limits["max_file_mb"] * 1024 * 1024
    new = spec["root"]
    _mount("none", "/", flags=MS_REC | MS_PRIVATE)
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    os.umask(0o022)
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            os.symlink(os.readlink(top), new + top)
        elif os.path.isdir(top):
            _bind(top, new + top, read_only=True)
    for folder, mode in (("/tmp", "1777"), ("/dev", "0755")):
        os.makedirs(new + folder, exist_ok=True)
        size = tmp_bytes if folder == "/tmp" else 1 << 20
        _mount("tmpfs", new + folder, "tmpfs", MS_NOSUID | MS_NODEV if folder == "/tmp"
               else MS_NOSUID, f"mode={mode},size={size}")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(f"/dev/{name}", f"{new}/dev/{name}", read_only=False)
    for name, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                     ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                     ("core", "/proc/kcore")):
        os.symlink(to, f"{new}/dev/{name}")
    os.makedirs(new + "/dev/shm")
    _mount("tmpfs", new + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
           f"mode=1777,size={tmp_bytes}")
    os.makedirs(new + "/proc")
    _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if spec["mode"] == "userns":  # one more user namespace under ours: see below
        Path(f"{new}/proc/sys/user/max_user_namespaces").write_text("1")
    for part in ("sys", "sysrq-trigger", "irq", "bus"):  # read-only, as bubblewrap has them
        if os.path.exists(f"{new}/proc/{part}"):
            _mount(f"{new}/proc/{part}", f"{new}/proc/{part}", flags=MS_BIND | MS_REC)
            _mount(None, f"{new}/proc/{part}",
                   flags=MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # the grading's folders last: they may lie under /tmp, mounted above
    for path in _minimal([*spec["read_only"], cwd]):
        _bind(path, new + path, read_only=True)
    for path in (spec["run"], spec["home"]):
        _bind(path, new + path, read_only=False)
    os.chdir(new)
    _check(_syscall("pivot_root", b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _mount(None, "/", flags=MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _drop_capabilities():
    """No capabilities left (an ordinary user's sandbox: we are 'root' of its user namespace)."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable, twice: all zero
    _check(_syscall("capset", header, data), "drop capabilities")


def _effective_capabilities():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return None


def _set_limits(limits):
    import resource

    mb = 1024 * 1024
    for what, soft, hard in (
            (resource.RLIMIT_AS, limits["memory_mb"] * mb, limits["memory_mb"] * mb),
            (resource.RLIMIT_CPU, limits["cpu_seconds"], limits["cpu_seconds"] + 5),
            (resource.RLIMIT_FSIZE, limits["max_file_mb"] * mb, limits["max_file_mb"] * mb),
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_NPROC, limits["max_processes"], limits["max_processes"])):
        resource.setrlimit(what, (soft, hard))


def _enter_user_namespace(uid, gid):
    """Map our own ids in a user namespace just made (an ordinary user's sandbox)."""
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")


def _disable_user_namespaces(uid, gid):
    """No user namespace inside the sandbox (bubblewrap's --disable-userns): _build_root
    allowed one more under ours; make it now, as bubblewrap does, so none is left."""
    _check(_libc.unshare(CLONE_NEWUSER), "the nested user namespace")
    _enter_user_namespace(uid, gid)


def _run_kernel(req, uid):
    """PID 1 of the new PID namespace: build the sandbox, then fork the kernel and reap."""
    spec, cwd, mode = req["spec"], req["cwd"], req["spec"]["mode"]
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _name("rg-kernel-init")
    _build_root(spec, cwd)
    user, group = os.getuid(), os.getgid()
    if mode == "root":
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root: every capability goes with it
    else:
        _disable_user_namespaces(user, group)
        _drop_capabilities()
    if _effective_capabilities() != 0:
        raise SandboxError("capabilities left after dropping them")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # again: a change of credentials clears it
    _set_limits(spec["limits"])
    os.chdir(cwd)
    kernel = os.fork()
    if kernel == 0:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _name("rg-kernel")
        os.setsid()  # a session of its own (bubblewrap's --new-session): its interrupts
        _become_kernel(req)  # (ipykernel signals its process group) never reach this init
    _prctl(PR_SET_DUMPABLE, 0)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(number, signal.SIG_DFL)  # PID 1: no handler, so signals from inside
    while True:  # reap whatever the kernel leaves, until the kernel itself exits
        pid, status = os.wait()
        if pid == kernel:
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _become_kernel(req):
    """The kernel, PID 2 of its namespace: ipykernel, as `python -m ipykernel_launcher`."""
    def kernel():
        from ipykernel import kernelapp

        from .isolation import kernel_env

        env = kernel_env(req["env"], req["spec"])
        os.environ.clear()
        os.environ.update(env)
        os.environ.update(_SET_BY_IMPORTS)  # as if imported here, as a new kernel would
        _matplotlib_folders_from_env()
        sys.dont_write_bytecode = True
        sys.argv = ["ipykernel_launcher", "-f", req["connection_file"], *req["extra"]]
        if "numpy" in sys.modules:  # its global generator: fresh entropy, as in a new process
            sys.modules["numpy"].random.seed()
        kernelapp.launch_new_instance()

    run_and_exit(kernel)


def _keep_only(fds):
    """Close every file descriptor but `fds`."""
    keep = sorted(set(fds))
    low = 0
    for fd in [*keep, 1 << 20]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def _serve_one(conn, req, stdio):
    """In a child of the template: make the namespaces, fork PID 1, wait for it; report its
    exit status on `conn`; kill it if the launcher goes away. Never returns."""
    status = 1
    try:
        os.setsid()
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _name("rg-kernel-watch")
        for i, fd in enumerate(stdio):
            os.dup2(fd, i)
        _keep_only([0, 1, 2, conn.fileno()])
        mode = req["spec"]["mode"]
        flags = (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
                 | CLONE_NEWCGROUP)
        user, group = os.getuid(), os.getgid()
        if mode == "userns":
            _check(_libc.unshare(CLONE_NEWUSER), "a user namespace")
            _enter_user_namespace(user, group)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # again: new credentials cleared it
        _check(_libc.unshare(flags), "namespaces")
        uid = req["uid"]
        init = os.fork()
        if init == 0:
            try:
                conn.close()
                _run_kernel(req, uid)
            except BaseException as exc:  # noqa: BLE001 - say why, never run unsandboxed
                print(f"rnngrading.kernelfork: the kernel's sandbox failed: {exc}",
                      file=sys.stderr, flush=True)
            os._exit(70)
        pidfd = os.pidfd_open(init)
        while True:
            ready, _, _ = select.select([conn, pidfd], [], [])
            if pidfd in ready:
                _, wait_status = os.waitpid(init, 0)
                status = os.waitstatus_to_exitcode(wait_status)
                break
            if not conn.recv(1):  # the launcher is gone: nobody waits for this kernel
                os.kill(init, signal.SIGKILL)  # PID 1: the whole namespace goes with it
                os.waitpid(init, 0)
                os._exit(1)
        conn.sendall(json.dumps({"exit": status}).encode() + b"\n")
    except BaseException as exc:  # noqa: BLE001
        try:
            conn.sendall(json.dumps({"error": str(exc)[:300]}).encode() + b"\n")
        except OSError:
            pass
    finally:
        os._exit(0)


def _receive(conn):
    """One request: a JSON line and three file descriptors (the launcher's stdio)."""
    fds = array.array("i")
    data = b""
    while not data.endswith(b"\n"):
        msg, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * fds.itemsize))
        if not msg:
            raise OSError("the launcher closed the connection")
        data += msg
        if len(data) > MAX_REQUEST:
            raise OSError("request too large")
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    if len(fds) != 3:
        raise OSError(f"expected 3 file descriptors, got {len(fds)}")
    return json.loads(data), list(fds)


def serve(path):
    """`python -m rnngrading.kernelfork SOCKET`: import, listen, fork one kernel per request.

    Only this user's processes may ask (SO_PEERCRED). Exits when the grading process that
    started it is gone.
    """
    import importlib

    from .launcher import SANDBOX_UID_BASE

    parent = os.getppid()
    if sys.path and sys.path[0] in ("", os.getcwd()):  # as ipykernel_launcher has it
        del sys.path[0]
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # pydevd's notice, on our stderr
    # matplotlib as a new kernel finds it, with an empty home: not the instructor's
    # matplotlibrc, font cache or backend. (pyplot picks its backend at the first plot.)
    mpl_dir = os.path.join(os.path.dirname(path), "mpl")
    os.mkdir(mpl_dir, 0o700)
    os.environ["MPLCONFIGDIR"] = mpl_dir
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    os.environ.pop("MATPLOTLIBRC", None)
    before = dict(os.environ)
    for name in PRELOAD:
        importlib.import_module(name)
    _SET_BY_IMPORTS.update((k, v) for k, v in os.environ.items() if before.get(k) != v)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    server.settimeout(0.5)
    print("ready", flush=True)
    me = os.getuid()
    while os.getppid() == parent:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        try:
            pid, uid, _ = _peer(conn)
            if uid != me:
                raise OSError(f"user {uid} may not ask")
            req, stdio = _receive(conn)
        except (OSError, ValueError):
            conn.close()
            continue
        # as root each kernel gets a user id of its own, as bubblewrap's launcher gives it
        req["uid"] = SANDBOX_UID_BASE + pid if me == 0 else me
        child = os.fork()
        if child == 0:
            server.close()
            _serve_one(conn, req, stdio)
        conn.close()
        for fd in stdio:
            os.close(fd)
    # the grading process is gone, perhaps killed outright (no atexit): tidy its folder
    server.close()
    shutil.rmtree(mpl_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.unlink(path)
        os.rmdir(os.path.dirname(path))  # only when empty: ours, made for the socket
    return 0


def _matplotlib_folders_from_env():
    """matplotlib keeps the config and cache folders it found first (the template's): have
    it look again, from this kernel's environment (its home), as in a new kernel."""
    mpl = sys.modules.get("matplotlib")
    if mpl is None:
        return
    for name, fmt in (("get_configdir", "CONFIGDIR=%s"), ("get_cachedir", "CACHEDIR=%s")):
        setattr(mpl, name, mpl._logged_cached(fmt)(getattr(mpl, name).__wrapped__))
    style = sys.modules.get("matplotlib.style")
    if style is not None:
        style.USER_LIBRARY_PATHS[:] = [os.path.join(mpl.get_configdir(), "stylelib")]


def _peer(conn):
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)


# ------------------------------------------------------------------ the grading process's side


class _Template:
    def __init__(self, env):
        self.folder = tempfile.mkdtemp(prefix="rg-kf-")  # 0700: only this user reaches it
        self.path = os.path.join(self.folder, "socket")
        self.proc = subprocess.Popen([sys.executable, "-m", "rnngrading.kernelfork", self.path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd="/")
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            self.close()
            raise RuntimeError(f"the kernel template did not start (said {first!r})")

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_templates = {}
_lock = threading.Lock()


def enabled():
    return os.environ.get("RNNCOURSE_KERNEL_FORK", "1") != "0"


def template_socket(limits, mode):
    """The socket of this process's kernel template for these limits (started if needed),
    or None when kernels are not forked (no sandbox, or RNNCOURSE_KERNEL_FORK=0)."""
    if mode is None or not enabled():
        return None
    from .course import grading_env

    threads = str(limits.kernel_threads)
    with _lock:
        template = _templates.get(threads)
        if template is None or not template.alive():
            if template is not None:
                template.close()
            env = grading_env()
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                env[var] = threads  # read as the libraries load: the kernels' thread count
            template = _templates[threads] = _Template(env)
        return template.path


@atexit.register
def close_all():
    with _lock:
        while _templates:
            _templates.popitem()[1].close()


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
