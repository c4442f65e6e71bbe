"""Intake of a folder of submissions: which notebook to grade for whom, and who is refused.

    jobs, refusals = collect(FOLDER, "jacobian", max_bytes=20 * 2**20)

Every entry of FOLDER is judged on its own, never by what the rest of the batch looks
like. A student folder may hold its notebook in either layout, student by student:

    FOLDER/<id>/<assignment>.ipynb               (a plain hand-in)
    FOLDER/<id>/<assignment>/<assignment>.ipynb  (nbgrader's submitted/ layout)

A student is refused, with a one-line reason, when
- the entry is a symlink, or not a folder (a stray zip is listed, not skipped);
- the id is not a SAFE_ID;
- anything inside the folder is a symlink (hidden ones and those in .ipynb_checkpoints
  too), or a fifo, socket or device; the walk never follows a link;
- the notebook is not a regular file, or is bigger than max_bytes;
- the folder holds more than max_folder_bytes (default FOLDER_FACTOR * max_bytes) in all,
  more than MAX_ENTRIES entries, or folders nested deeper than MAX_DEPTH;
- both layouts hold a notebook ("two copies");
- no notebook of the expected name is there and the folder does not hold exactly one
  other notebook. A single wrongly named notebook is passed on as a job, so that the
  grader's precheck reports it as "wrongly named notebook" with a zero.
Hidden files and folders (.ipynb_checkpoints, .DS_Store) are never taken as the
notebook; hidden entries of FOLDER that are not symlinks are ignored.

The walk holds each folder open and reaches the next one with openat(O_NOFOLLOW), so a
folder swapped for a symlink while it runs is not followed. collect() reads no
notebook: read_submission() reads one the same way, just before grading, and checks
again that it is a regular file within the size limit.

Everything a submission names (ids, file names) goes through one_line() before it is
printed: a newline in a folder name cannot forge a line of the grading report.

Standard library only: tools/sandbox.py imports it as a sibling module.
"""

import errno
import os
import re
import stat
from pathlib import Path

# A student id: ASCII letters, digits, "-", "_" and "."; 1 to 64 characters; no leading
# dot (no hidden names, no "." or ".."). It is used as a folder name and a gradebook id.
SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
FOLDER_FACTOR = 5  # a student folder may hold at most FOLDER_FACTOR * max_bytes in all
MAX_ENTRIES = 10_000  # files and folders in one student folder
MAX_DEPTH = 16  # folders nested in one student folder
CHECKPOINTS = ".ipynb_checkpoints"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Refused(Exception):
    """A submission that is not graded; str(exc) is a one-line reason."""


def one_line(text, limit=200):
    """Any text from a submission as one printable line, at most `limit` characters.

    text: a str (or bytes, decoded as file names are, with surrogateescape)
    returns a str: printable characters as they are; backslash, control characters
    (newlines, carriage returns, tabs, ESC of ANSI sequences), Unicode line and
    paragraph separators, format characters (bidi overrides), non-ASCII spaces and
    undecodable bytes written as repr() writes them (\\n, \\x1b, \\u2028, \\udcff);
    cut with a "...[+N chars]" marker (N characters of `text` left out) if longer
    """
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    text = str(text)
    pieces, used, size = [], 0, 0
    for ch in text:
        piece = ch if ch.isprintable() and ch != "\\" else repr(ch)[1:-1]
        if size + len(piece) > limit:
            break
        pieces.append(piece)
        used += 1
        size += len(piece)
    if used == len(text):
        return "".join(pieces)
    while True:  # make room for the marker; it counts what is left out
        marker = f"...[+{len(text) - used} chars]"
        if size + len(marker) <= limit or not pieces:
            return "".join(pieces) + marker
        size -= len(pieces.pop())
        used -= 1


def _kind(mode):
    for test, name in ((stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder"),
                       (stat.S_ISREG, "file")):
        if test(mode):
            return name
    return "special file"


def _walk(dir_fd, prefix, found, depth=0):
    """Every entry below the open folder `dir_fd`, by lstat, links never followed.

    prefix: the folder's path relative to the student folder, a tuple of names
    found: dict filled with "files" [(rel, size)], "links" [rel], "special" [(rel, kind)],
    "dirs" [rel] and "entries" (a count); stops early once MAX_ENTRIES is passed
    """
    if depth > MAX_DEPTH:
        found["too_deep"] = "/".join(prefix)
        return
    try:
        with os.scandir(dir_fd) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        raise Refused(f"cannot list {_show(prefix) or 'the folder'} ({exc.strerror}): "
                      "not graded") from None
    for entry in entries:
        found["entries"] += 1
        if found["entries"] > MAX_ENTRIES:
            return
        rel = (*prefix, entry.name)
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            found["links"].append(rel)
        elif stat.S_ISREG(mode):
            found["files"].append((rel, entry.stat(follow_symlinks=False).st_size))
        elif stat.S_ISDIR(mode):
            found["dirs"].append(rel)
            try:
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link
                    found["links"].append(rel)
                    continue
                raise Refused(f"cannot open {_show(rel)} ({exc.strerror}): not graded") from None
            try:
                _walk(sub, rel, found, depth + 1)
            finally:
                os.close(sub)
        else:
            found["special"].append((rel, _kind(mode)))


def _candidate(rel):
    """A notebook the student may mean: *.ipynb, nothing hidden on its path."""
    return rel[-1].endswith(".ipynb") and not any(part.startswith(".") for part in rel)


def _show(rel):
    return one_line("/".join(rel), 80)


def _judge(dir_fd, assignment, max_bytes, max_folder_bytes):
    """The notebook to grade in one open student folder: its relative path, or Refused."""
    found = {"files": [], "links": [], "special": [], "dirs": [], "entries": 0}
    _walk(dir_fd, (), found)
    if found["links"]:
        links = found["links"]
        more = f" and {len(links) - 1} more" if len(links) > 1 else ""
        raise Refused(f"symlink inside the folder ({_show(links[0])}{more}): not graded")
    if found["entries"] > MAX_ENTRIES:
        raise Refused(f"more than {MAX_ENTRIES} files and folders: not graded")
    if "too_deep" in found:
        raise Refused(f"folders nested deeper than {MAX_DEPTH}: not graded")
    odd_notebooks = [(rel, kind) for rel, kind in found["special"] if _candidate(rel)]
    odd_notebooks += [(rel, "folder") for rel in found["dirs"] if _candidate(rel)]
    if odd_notebooks:
        rel, kind = sorted(odd_notebooks)[0]
        raise Refused(f"notebook {_show(rel)} is not a regular file (a {kind}): not graded")
    if found["special"]:
        rel, kind = found["special"][0]
        raise Refused(f"{kind} inside the folder ({_show(rel)}): not graded")
    total = sum(size for _, size in found["files"])
    if total > max_folder_bytes:
        raise Refused(f"folder holds {total} bytes, over the limit of {max_folder_bytes}: "
                      "not graded")
    notebooks = {rel: size for rel, size in found["files"] if _candidate(rel)}
    name = f"{assignment}.ipynb"
    expected = [rel for rel in ((name,), (assignment, name)) if rel in notebooks]
    if len(expected) == 2:
        raise Refused(f"two copies: {_show(expected[0])} and {_show(expected[1])}: not graded")
    if expected:
        chosen = expected[0]
    elif len(notebooks) == 1:  # wrongly named: the grader's precheck says so
        chosen = next(iter(notebooks))
    elif notebooks:
        names = ", ".join(_show(rel) for rel in sorted(notebooks)[:5])
        more = f" and {len(notebooks) - 5} more" if len(notebooks) > 5 else ""
        raise Refused(f"no {name}; found {names}{more}: not graded")
    else:
        raise Refused(f"no notebook (expected {name}): not graded")
    if notebooks[chosen] > max_bytes:
        raise Refused(f"notebook {_show(chosen)} holds {notebooks[chosen]} bytes, over the "
                      f"limit of {max_bytes}: not graded")
    return chosen


def collect(folder, assignment, max_bytes, max_folder_bytes=None):
    """The submissions in `folder` to grade, and the entries refused, student by student.

    folder: FOLDER of FOLDER/<id>/...; trusted itself (the instructor names it), nothing
    below it is; assignment: its name, as in <assignment>.ipynb; max_bytes: the largest
    notebook; max_folder_bytes: the most one student folder may hold (FOLDER_FACTOR *
    max_bytes if None)
    returns (jobs, refusals), each sorted by id:
      jobs: [(student_id, notebook Path)], student_id a SAFE_ID
      refusals: [(one_line(entry name), one-line reason)]
    """
    folder = Path(folder)
    if max_folder_bytes is None:
        max_folder_bytes = FOLDER_FACTOR * max_bytes
    jobs, refusals = [], []
    top = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.scandir(top) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        for entry in entries:
            shown = one_line(entry.name, 80)
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:  # gone since the listing
                continue
            if entry.name.startswith(".") and not stat.S_ISLNK(mode):
                continue
            try:
                if stat.S_ISLNK(mode):
                    raise Refused("a symlink, not a folder: not graded")
                if not stat.S_ISDIR(mode):
                    raise Refused(f"not a folder (a {_kind(mode)}): not graded")
                if not SAFE_ID.fullmatch(entry.name):
                    raise Refused("student id not allowed (1-64 letters, digits, '-', '_', "
                                  "'.', no leading dot): not graded")
                try:
                    fd = os.open(entry.name, _DIR_FLAGS, dir_fd=top)
                except OSError as exc:
                    raise Refused(f"cannot open the folder ({exc.strerror}): not graded") from None
                try:
                    rel = _judge(fd, assignment, max_bytes, max_folder_bytes)
                finally:
                    os.close(fd)
                jobs.append((entry.name, folder.joinpath(entry.name, *rel)))
            except Refused as why:
                refusals.append((shown, one_line(str(why))))
    finally:
        os.close(top)
    return sorted(jobs), sorted(refusals)


def read_submission(folder, notebook, max_bytes):
    """The bytes of a notebook that collect() listed, read without following a symlink.

    folder: the FOLDER given to collect(); notebook: the Path it returned (below folder)
    Each folder below `folder`, and the notebook, is opened with O_NOFOLLOW relative to
    the one above, so a part swapped for a link since collect() is refused, not read.
    returns bytes; raises Refused (one-line reason) for a link, a file that is not a
    regular file, or one bigger than max_bytes
    """
    parts = Path(notebook).relative_to(folder).parts
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise Refused(f"not a path below the folder: {one_line(str(notebook))}")
    fds = [os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        for part in parts[:-1]:
            try:
                fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
            except OSError as exc:
                raise Refused(f"folder {one_line(part, 80)} changed ({exc.strerror}): "
                              "not graded") from None
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fds[-1])
        except OSError as exc:
            raise Refused(f"notebook {one_line(parts[-1], 80)} changed ({exc.strerror}): "
                          "not graded") from None
        fds.append(fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"notebook is not a regular file (a {_kind(info.st_mode)}): "
                          "not graded")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise Refused(f"notebook bigger than the limit of {max_bytes} bytes: not graded")
        return b"".join(chunks)
    finally:
        for fd in reversed(fds):
            os.close(fd)
