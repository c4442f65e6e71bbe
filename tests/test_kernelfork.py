"""Kernels forked from a template (rnngrading.kernelfork) get the sandbox bubblewrap gives.

The same probe runs in a kernel started through bubblewrap (the reference: isolation.py's
kernel spec, as before the templates) and in one forked from a template, both set up by
isolation.kernel_setup for the same limits; what each kernel can see and do must agree, and
a few facts are checked outright (no network, the grading's other files out of sight, a
read-only root). As root and as an ordinary user, whichever runs the tests.
"""

import json
import os
import signal
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from rnngrading import isolation, kernelfork, launcher
from rnngrading.course import grading_env
from rnngrading.limits import load_limits

pytestmark = [pytest.mark.sandbox,
              pytest.mark.skipif(not isolation.can_isolate(),
                                 reason="needs bubblewrap to sandbox student code")]

PROBE = r"""
import ctypes, json, os, resource, socket, sys
import numpy as np

def writable(folder):
    try:
        with open(os.path.join(folder, ".probe"), "w") as f:
            f.write("x")
        os.remove(os.path.join(folder, ".probe"))
        return True
    except OSError:
        return False

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return line.split()[1]

def reaches(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False

facts = {
    "pid": os.getpid(), "ppid": os.getppid(),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "cap_eff": status("CapEff"), "cap_prm": status("CapPrm"),
    "no_new_privs": status("NoNewPrivs"),
    "limits": {name: resource.getrlimit(getattr(resource, name)) for name in
               ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_NPROC")},
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
    "reaches_loopback": reaches("127.0.0.1", PORT),
    "root": sorted(os.listdir("/")),
    "writable": {p: writable(p) for p in WHERE},
    "sees": {p: os.path.exists(p) for p in HIDDEN},
    "cwd": os.getcwd(), "path0": sys.path[0],
    "home": os.environ.get("HOME"), "threads": os.environ.get("OMP_NUM_THREADS"),
    "userns": ctypes.CDLL(None, use_errno=True).unshare(0x10000000) == 0,
    "random": float(np.random.random()),
}
import hashlib, io
import matplotlib, matplotlib.pyplot as plt
from matplotlib import font_manager
plt.plot([0, 1], [1, 0])
png = io.BytesIO()
plt.gcf().savefig(png, format="png")
facts["matplotlib"] = {
    "backend": matplotlib.get_backend(), "env": [os.environ.get("MPLBACKEND"),
                                                 os.environ.get("MPLCONFIGDIR")],
    "configdir": matplotlib.get_configdir(), "cachedir": matplotlib.get_cachedir(),
    "rc": hashlib.sha256(repr(sorted((k, repr(v)) for k, v in matplotlib.rcParams.items()
                                     )).encode()).hexdigest(),
    "fonts": sorted({f.name for f in font_manager.fontManager.ttflist}),
    "styles": sorted(plt.style.available), "stylelib": plt.style.USER_LIBRARY_PATHS,
    "renders": png.tell() > 1000,
}
print(json.dumps(facts))
"""


def start_kernel(scratch, limits, mode, template):
    """A kernel of `scratch` (kernel_setup's kernel spec), its cwd scratch/nb; (km, client)."""
    env = isolation.kernel_setup(scratch, limits, mode, template=template)
    (scratch / "nb").mkdir()
    km = KernelManager(kernel_name=isolation.KERNEL_NAME, transport="ipc",
                       connection_file=str(scratch / "run" / "kernel-test.json"),
                       kernel_spec_manager=KernelSpecManager(
                           kernel_dirs=[env["JUPYTER_PATH"] + "/kernels"]))
    km.start_kernel(cwd=str(scratch / "nb"), env={**grading_env(), **env})
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    return km, client


def run(client, code):
    """What `code` printed, and the reply's status."""
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = client.execute_interactive(code, timeout=60, output_hook=hook)
    return "".join(out), reply["content"]["status"]


@pytest.fixture(scope="module")
def limits():
    return load_limits()


@pytest.fixture(scope="module")
def both(tmp_path_factory, limits):
    """{"bwrap": facts, "fork": facts, "fork_again": facts} and the scratch folders."""
    import socket

    mode = isolation.isolation()[0]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    facts, folders = {}, {}
    for name in ("bwrap", "fork", "fork_again"):
        scratch = Path(tmp_path_factory.mktemp(f"kf-{name}", numbered=True))
        (scratch / "source").mkdir()
        (scratch / "gradebook.db").write_text("secret")
        template = None if name == "bwrap" else kernelfork.template_socket(limits, mode)
        km, client = start_kernel(scratch, limits, mode, template)
        where = ["/", "/usr", str(Path(os.__file__).parent), str(scratch / "nb"),
                 str(scratch / "run"), str(scratch / "kernel-home"), "/tmp", "/dev/shm"]
        hidden = [str(scratch / "gradebook.db"), str(scratch / "source"),
                  str(scratch / "sandbox.json"), os.path.expanduser("~")]
        code = f"PORT = {port}\nWHERE = {where!r}\nHIDDEN = {hidden!r}\n" + PROBE
        try:
            text, state = run(client, code)
            assert state == "ok", text
            facts[name] = json.loads(text)
        finally:
            client.stop_channels()
            km.shutdown_kernel(now=True)
        folders[name] = scratch
    listener.close()
    return facts, folders


def comparable(facts, scratch):
    """The facts with this kernel's own folder names and user id made neutral."""
    text = json.dumps({k: v for k, v in facts.items() if k != "random"})
    text = text.replace(str(scratch), "SCRATCH")
    data = json.loads(text)
    if os.geteuid() == 0:  # a user id of its own per kernel: base + the launcher's pid
        for key in ("uid", "euid", "gid"):
            assert data[key] >= launcher.SANDBOX_UID_BASE
            data[key] = "own"
    return data


def test_a_forked_kernel_sees_and_may_do_what_a_bubblewrap_kernel_may(both):
    facts, folders = both
    reference = comparable(facts["bwrap"], folders["bwrap"])
    forked = comparable(facts["fork"], folders["fork"])
    differ = {k: (reference[k], forked[k]) for k in reference if reference[k] != forked[k]}
    assert not differ


def test_the_sandbox_itself(both, limits):
    facts, folders = both
    for name in ("bwrap", "fork"):
        seen, scratch = facts[name], folders[name]
        assert seen["interfaces"] == ["lo"] and not seen["reaches_loopback"]
        assert not any(seen["sees"].values()), seen["sees"]
        assert seen["writable"] == {
            "/": False, "/usr": False, str(Path(os.__file__).parent): False,
            str(scratch / "nb"): False, str(scratch / "run"): True,
            str(scratch / "kernel-home"): True, "/tmp": True, "/dev/shm": True}
        assert seen["cap_eff"] == "0000000000000000" and seen["no_new_privs"] == "1"
        assert seen["limits"]["RLIMIT_AS"] == [limits.memory_mb * 2**20] * 2
        assert seen["limits"]["RLIMIT_NPROC"] == [limits.max_processes] * 2
        assert seen["pid"] == 2 and seen["ppid"] == 1 and seen["processes"] == [1, 2]
        assert seen["cwd"] == str(scratch / "nb")
        assert seen["home"] == str(scratch / "kernel-home")
        assert seen["threads"] == str(limits.kernel_threads)
        home = str(scratch / "kernel-home")  # matplotlib's folders: the kernel's own home
        assert seen["matplotlib"]["configdir"] == seen["matplotlib"]["cachedir"] == home
        assert seen["matplotlib"]["renders"] and "inline" in seen["matplotlib"]["backend"]
        if os.geteuid() == 0:
            assert seen["uid"] == seen["euid"] == seen["gid"] >= launcher.SANDBOX_UID_BASE
            assert seen["groups"] == []


def test_forked_kernels_do_not_share_numpys_random_state(both):
    facts, _ = both
    assert facts["fork"]["random"] != facts["fork_again"]["random"]


def test_a_killed_launcher_takes_the_kernel_and_its_processes_with_it(tmp_path, limits):
    mode = isolation.isolation()[0]
    template = kernelfork.template_socket(limits, mode)
    km, client = start_kernel(tmp_path, limits, mode, template)
    try:
        text, state = run(client, "import subprocess, os\n"
                                  "p = subprocess.Popen(['sleep', '300'])\n"
                                  "print(os.getpid(), p.pid)")
        assert state == "ok" and text.split()[0] == "2"
        marker = str(tmp_path / "run")
        launcher = km.provisioner.process.pid
        os.kill(launcher, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _sleepers(marker):
            time.sleep(0.1)
        assert not _sleepers(marker)
    finally:
        client.stop_channels()
        km.cleanup_resources()


def _sleepers(run_folder):
    """Processes whose open files or command line mention the kernel's run folder, or
    `sleep 300`, besides this one."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if cmd.strip() == "sleep 300" or "ipykernel" in cmd and run_folder in cmd:
            found.append(pid)
    return found


def test_the_template_needs_the_sandbox_to_build(tmp_path, limits):
    """A request whose sandbox cannot be built (its notebook folder is gone) ends with the
    reason on the kernel's stderr and a non-zero status, never with a kernel."""
    mode = isolation.isolation()[0]
    template = kernelfork.template_socket(limits, mode)
    isolation.kernel_setup(tmp_path, limits, mode, template=template)
    spec = json.loads((tmp_path / "sandbox.json").read_text())
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        code = launcher.ask_template(template, spec, str(tmp_path / "run" / "k.json"),
                                    str(tmp_path / "no-such-folder"), [])
    finally:
        os.dup2(saved, 2)
        os.close(write)
    said = os.read(read, 65536).decode()
    assert code != 0 and "sandbox failed" in said


def test_user_namespaces_inside_match_bubblewrap(both):
    facts, _ = both
    assert facts["fork"]["userns"] == facts["bwrap"]["userns"]
    if os.geteuid() != 0:
        assert not facts["fork"]["userns"]


def test_templates_can_be_turned_off(monkeypatch, limits):
    monkeypatch.setenv("RNNCOURSE_KERNEL_FORK", "0")
    assert kernelfork.template_socket(limits, isolation.isolation()[0]) is None
    assert kernelfork.template_socket(limits, None) is None


def test_no_template_process_outlives_its_grading_process(tmp_path):
    """A grading process killed outright (no atexit) leaves no template behind, nor its
    socket's folder."""
    import subprocess
    import sys

    code = ("import os, sys\nfrom rnngrading import isolation, kernelfork\n"
            "from rnngrading.limits import load_limits\n"
            "print(kernelfork.template_socket(load_limits(), isolation.isolation()[0]),"
            " flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    path = proc.stdout.readline().strip()
    assert path.endswith("socket") and _templates_serving(path)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _templates_serving(path):
        time.sleep(0.1)
    assert not _templates_serving(path)
    while time.monotonic() < deadline and os.path.exists(os.path.dirname(path)):
        time.sleep(0.1)
    assert not os.path.exists(os.path.dirname(path))


def _answers(msg, msg_id, msg_type):
    return msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == msg_type


def _templates_serving(path):
    return [pid for pid in os.listdir("/proc") if pid.isdigit() and path.encode() in
            _cmdline(pid)]


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize("way", ["bwrap", "fork"])
def test_an_interrupt_stops_the_cell_and_the_kernel_lives_on(tmp_path, limits, way):
    """nbclient interrupts a cell past its time limit (an interrupt_request: ipykernel
    signals its own process group); the next cell runs in the same kernel. The loop is
    sent as nbgrader sends a cell (allow_errors: stop_on_error=False); with the default,
    ipykernel aborts any request that arrives before its abort window closes, a race.
    Replies are matched to their request, as nbclient matches them: wait_for_ready asks
    for kernel_info again every second while a kernel starts, so a slow start leaves
    replies behind on the shell channel. The test leaves one there on purpose."""
    mode = isolation.isolation()[0]
    template = kernelfork.template_socket(limits, mode) if way == "fork" else None
    km, client = start_kernel(tmp_path, limits, mode, template)
    try:
        client.kernel_info()  # a reply nobody reads, as after a slow start
        msg_id = client.execute("import time\nprint('looping', flush=True)\nwhile True:\n"
                                "    time.sleep(0.01)\n", stop_on_error=False)
        while not (_answers(client.get_iopub_msg(timeout=20), msg_id, "stream")):
            pass  # the cell's own code is running: interrupt it
        km.interrupt_kernel()
        reply = client.get_shell_msg(timeout=20)
        while not _answers(reply, msg_id, "execute_reply"):
            reply = client.get_shell_msg(timeout=20)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        text, state = run(client, "print(6 * 7)")
        assert (text.strip(), state) == ("42", "ok") and km.is_alive()
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
