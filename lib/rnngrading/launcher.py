"""The grading kernel spec's launcher, run once per kernel outside any sandbox.

`python -m rnngrading.launcher --spec SPEC -f CONNECTION_FILE [ipykernel arguments]` is the
argv of the kernel spec that isolation.kernel_setup writes. It runs as the instructor (or
root): it gives the kernel's run and home folders to the kernel's user id (as root), arranges
to die with nbgrader, and then asks this grading process's kernel template for a kernel
(kernelfork.py) and waits for its exit status; without a template, or when the template
cannot be reached, it execs bubblewrap around a new ipykernel (isolation.kernel_command).

It runs for every submission, so it imports only the standard library until it needs
bubblewrap: with isolation.py's imports it took about 0.12 s of CPU a kernel, 0.03 s
without them.
"""

import array
import json
import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1
SANDBOX_UID_BASE = 1_500_000_000  # as root: kernel user id = base + launcher pid (unique)


def die_with_parent():
    """Have the kernel send this process SIGKILL when its parent dies."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def chown_tree(path, uid):
    os.chown(path, uid, uid)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, uid, follow_symlinks=False)


def ask_template(path, spec, connection_file, cwd, extra):
    """Ask the kernel template at `path` for a kernel and wait for it.

    returns its exit status; OSError when the template cannot be reached
    """
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    req = {"spec": spec, "connection_file": connection_file, "cwd": cwd, "extra": list(extra),
           "env": dict(os.environ)}
    conn.sendmsg([json.dumps(req).encode() + b"\n"],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
    reply = b""
    while not reply.endswith(b"\n"):
        part = conn.recv(4096)
        if not part:
            return 1  # the template went away: the kernel with it
        reply += part
    said = json.loads(reply)
    if "error" in said:
        print(f"rnngrading.kernelfork: {said['error']}", file=sys.stderr, flush=True)
        return 1
    return said["exit"]


def launch_kernel(spec_file, connection_file, extra=()):
    """Start one sandboxed grading kernel for nbgrader: forked from the template, or
    bubblewrap around ipykernel (exec'd: then it never returns)."""
    with open(spec_file) as f:
        spec = json.load(f)
    uid = None
    if spec["mode"] == "root":
        uid = SANDBOX_UID_BASE + os.getpid()
        for folder in (spec["run"], spec["home"]):
            chown_tree(folder, uid)
    die_with_parent()  # nbgrader gone (its wall limit), this launcher and its kernel too
    connection_file = os.path.realpath(connection_file)
    if spec.get("template"):
        try:
            return ask_template(spec["template"], spec, connection_file, os.getcwd(), extra)
        except OSError as exc:
            print(f"rnngrading: the kernel template cannot be reached ({exc}); starting the "
                  "kernel through bubblewrap", file=sys.stderr, flush=True)
    from .isolation import kernel_command

    argv, env = kernel_command(spec, connection_file, os.getcwd(), extra, uid)
    os.execvpe(argv[0], argv, env)


def parse(argv):
    """(spec, connection file, the rest for ipykernel) from `--spec SPEC -f FILE ...`, in
    any order, as the kernel spec and jupyter_client put them."""
    found, extra = {}, []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("--spec", "-f"):
            if not eq:
                if not args:
                    raise SystemExit(f"rnngrading.launcher: {name} needs a value")
                value = args.pop(0)
            found[name] = value
        else:
            extra.append(arg)
    missing = [name for name in ("--spec", "-f") if name not in found]
    if missing:
        raise SystemExit(f"usage: python -m rnngrading.launcher --spec SPEC -f "
                         f"CONNECTION_FILE [ipykernel arguments] ({missing[0]} is missing)")
    return found["--spec"], found["-f"], extra


def main(argv=None):
    spec, connection_file, extra = parse(sys.argv[1:] if argv is None else argv)
    return launch_kernel(spec, connection_file, extra)


if __name__ == "__main__":
    sys.exit(main())
