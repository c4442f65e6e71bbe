"""Isolation of a grading kernel: bubblewrap namespaces, a user id of its own, rlimits.

nbgrader starts a grading kernel through the kernel spec that kernel_setup writes: the
spec's argv is `python -m rnngrading.launcher --spec SPEC -f CONNECTION_FILE`, which runs
as the instructor (or root), outside any sandbox. It asks the grading process's kernel
template for a forked kernel (kernelfork.py, which builds the same sandbox by hand) or
execs bubblewrap around ipykernel (kernel_command): new PID, network, IPC and UTS
namespaces; a filesystem of the system's programs (/usr, /etc), the Python environment and
the notebook's folder, all read-only, and a home, /tmp and /dev/shm of its own. As root the
kernel runs under a user id of its own (launcher.SANDBOX_UID_BASE + the launcher's pid); as
an ordinary user, in a user namespace of its own. Either way the process limit counts this
kernel's processes only. rlimits are set inside by prlimit. The kernel talks to nbgrader
over Unix sockets in the run folder (transport "ipc"): it has no network, not even
nbgrader's loopback.
"""

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .course import GradingSetupError, grading_env
from .limits import Limits

KERNEL_NAME = "rnncourse-sandbox"
KERNEL_ENV = ("PATH", "LANG", "LANGUAGE", "TZ", "PYTHONPATH", "PYTHONHASHSEED")
KERNEL_ENV_PREFIXES = ("LC_", "OPENBLAS_", "OMP_", "MKL_", "ATEN_", "ONEDNN_", "NPY_")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
MAX_SOCKET_PATH = 107  # sun_path of a Unix socket holds 108 bytes, the last a NUL


def bwrap_path():
    """bubblewrap's path (RNNCOURSE_BWRAP overrides it, e.g. to test a machine without it)."""
    return os.environ.get("RNNCOURSE_BWRAP") or shutil.which("bwrap") or "/usr/bin/bwrap"




def _system_mounts():
    """bwrap arguments that show the system's programs and libraries read-only."""
    args = []
    for top in SYSTEM_DIRS:
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


@functools.cache
def isolation():
    """(mode, reason): how this machine isolates a grading kernel, probed once per process.

    mode "root":   running as root; privileged bubblewrap, the kernel under a user id of its
                   own (launcher.SANDBOX_UID_BASE + the launcher's pid)
    mode "userns": an ordinary user; bubblewrap in an unprivileged user namespace
    mode None:     no isolation possible; reason says why, in one line, with the fix
    """
    bwrap = bwrap_path()
    if not os.access(bwrap, os.X_OK):
        return None, (f"bubblewrap ({bwrap}) is missing: install it (apt-get install bubblewrap, "
                      "or make setup as root)")
    mode = "root" if os.geteuid() == 0 else "userns"
    argv = [bwrap, *_unshare_args(mode), *_system_mounts(), "--proc", "/proc", "--dev", "/dev",
            "true"]
    probe = subprocess.run(argv, capture_output=True, text=True)
    if probe.returncode == 0:
        return mode, ""
    said = (probe.stderr.strip().splitlines() or ["no message"])[-1][:160]
    if mode == "userns":
        return None, (f"bubblewrap cannot create a user namespace here ({said}): allow "
                      "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                      "or kernel.apparmor_restrict_unprivileged_userns=0), or grade as root")
    return None, f"bubblewrap failed as root ({said})"


def can_isolate():
    """True when student kernels can be sandboxed on this machine."""
    return isolation()[0] is not None


def _unshare_args(mode):
    args = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if mode == "userns":
        # Each kernel in a user namespace of its own: the process limit counts the processes
        # of that namespace only (Linux >= 5.14 ucounts), not every kernel of this user.
        return args + ["--unshare-user", "--disable-userns"]
    # As root the kernel gets a user id of its own (setpriv below): no user namespace, and
    # only the capabilities that setpriv needs, dropped with the user id.
    return args + ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]


def _minimal(paths):
    """The paths not inside another of them, nor inside a system directory."""
    keep = []
    for path in sorted({str(Path(p)) for p in paths}, key=lambda p: (p.count("/"), p)):
        inside = [*SYSTEM_DIRS, *keep]
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in inside):
            keep.append(path)
    return keep


def python_paths():
    """What a grading kernel must read: the interpreter, its environment and sys.path."""
    return _python_paths(os.environ.get("PYTHONPATH"))


@functools.cache
def _python_paths(pythonpath):
    code = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, *sys.path[1:]]))"
    env = {k: v for k, v in grading_env().items() if k in ("PATH", "HOME")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd="/", check=True)
    found = [str(Path(p).resolve()) for p in json.loads(out.stdout) if p and Path(p).exists()]
    found.append(str(Path(sys.executable).parent.parent))  # the venv, not its target
    return _minimal(found)


def bwrap_argv(mode, read_only, writable, chdir, tmp_bytes):
    """The bubblewrap command line of one grading kernel (the command itself not included).

    read_only / writable: paths shown at the same place inside, nothing else of the host's
    files but the system directories; /tmp, /dev/shm and the home are the kernel's own
    """
    argv = [bwrap_path(), *_unshare_args(mode), *_system_mounts(), "--proc", "/proc",
            "--dev", "/dev", "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
            "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/dev/shm"]
    made = {"/", "/tmp", "/dev", "/proc", *SYSTEM_DIRS}
    binds = [(p, "--ro-bind") for p in _minimal(read_only)] + [(p, "--bind") for p in writable]
    for path, how in binds:
        # bwrap makes missing parents 0700 when it runs as root: make them 0755 ourselves,
        # so that the kernel's user can walk down to what it may read
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                argv += ["--dir", str(parent)]
                made.add(str(parent))
        argv += [how, path, path]
        made.add(path)
    # the root read-only once built: as an ordinary user it is the user's own tmpfs, with no
    # size limit, where the kernel could otherwise write without end
    return argv + ["--remount-ro", "/", "--chdir", chdir]


def _prlimit_args(limits):
    mb = 1024 * 1024
    return ["prlimit", f"--as={limits.memory_mb * mb}",
            f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 5}",
            f"--fsize={limits.max_file_mb * mb}", "--core=0",
            f"--nproc={limits.max_processes}", "--"]


def grading_mode(unsafe=False):
    """The isolation mode to grade with; GradingSetupError when there is none and the
    instructor did not ask to grade without it (unsafe)."""
    mode, why = isolation()
    if mode is None and not unsafe:
        raise GradingSetupError(f"cannot sandbox student code: {why}; or grade without "
                                "isolation with --unsafe-no-isolation (UNSAFE=1)")
    return mode


def kernel_setup(scratch, limits, mode, read_only=(), template=None):
    """Folders, spec and kernel spec for sandboxed kernels started from `scratch`.

    template: the socket of a kernel template (kernelfork.template_socket) to fork the
    kernels from, in the same sandbox; None: each kernel starts through bubblewrap

    returns the environment that a Jupyter process (nbgrader, or the pre-flight check)
    needs to find the kernel spec and to put its connection files in scratch/run
    """
    run, home = scratch / "run", scratch / "kernel-home"
    if len(str(run / "kernel-ipc-000")) > MAX_SOCKET_PATH:
        raise GradingSetupError(
            f"the grading folder {scratch} is too deep for the kernel's Unix sockets (their "
            f"paths may have {MAX_SOCKET_PATH} characters): set RNNCOURSE_GRADING_TMP to a "
            "shorter folder")
    for folder in (run, home, scratch / "jupyter-config"):
        folder.mkdir(mode=0o700)
    spec = {"mode": mode, "limits": dataclasses.asdict(limits), "home": str(home),
            "run": str(run), "read_only": [*python_paths(), *map(str, read_only)],
            "template": template if mode else None, "root": str(scratch / "sandbox-root")}
    (scratch / "sandbox-root").mkdir(mode=0o700)
    (scratch / "sandbox.json").write_text(json.dumps(spec, indent=1))
    argv = [sys.executable, "-m", "rnngrading.launcher", "--spec",
            str(scratch / "sandbox.json"), "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (sandboxed grading)",
              "language": "python", "interrupt_mode": "message"}
    folder = scratch / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(kernel, indent=1))
    return {"JUPYTER_PATH": str(scratch / "jupyter"), "JUPYTER_DATA_DIR": str(scratch / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(run), "JUPYTER_CONFIG_DIR": str(scratch / "jupyter-config")}


def kernel_env(launcher_env, spec):
    """A grading kernel's environment, from its launcher's: what KERNEL_ENV lets through,
    the kernel's home for every settings folder, and the limit's number of threads."""
    env = {k: v for k, v in launcher_env.items()
           if k in KERNEL_ENV or k.startswith(KERNEL_ENV_PREFIXES)}
    for var in ("HOME", "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "JUPYTER_RUNTIME_DIR"):
        env[var] = spec["home"]
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(spec["limits"]["kernel_threads"])
    return env


def kernel_command(spec, connection_file, cwd, extra=(), uid=None):
    """(argv, env) that start one sandboxed grading kernel through bubblewrap (the
    launcher's way when no kernel template serves it; see launcher.py)."""
    limits = Limits(**spec["limits"])
    home = spec["home"]
    env = kernel_env(os.environ, spec)
    kernel = [*_prlimit_args(limits), sys.executable, "-m", "ipykernel_launcher",
              "-f", connection_file, *extra]
    mode = spec["mode"]
    if mode is None:
        return kernel, env
    if mode == "root":
        kernel = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                  "--no-new-privs", "--", *kernel]
    argv = bwrap_argv(mode, spec["read_only"] + [cwd], [spec["run"], home], cwd,
                      limits.max_file_mb * 1024 * 1024)
    return argv + kernel, env
