"""Output caps in bytes, per cell and per notebook, for the autograde step.

Output of any size reaches the autograded notebook: `CappedExecute` (while the notebook
runs) and `LimitOutputBytes` (after it) cap it in bytes without changing a score;
runner.config_text puts them in the autograde step of every scratch course.
"""

import json
import re

import nbformat
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer

# ------------------------------------------------------------------ output caps in bytes
#
# nbgrader's LimitOutput counts lines: a single 100 MB line passes it whole. The caps
# below count bytes, per cell and per notebook. CappedExecute applies them while the
# notebook runs, as each output arrives, so a loop that prints a megabyte a thousand times
# never piles up a gigabyte in the grading process; LimitOutputBytes applies them again
# after execution (to outputs that reach the notebook another way: update_display_data,
# the error nbgrader appends from an execute reply) and is what the saved notebook obeys.
# A single kernel message is whole in memory before any of this sees it: jupyter_client
# has already received and decoded it (a 100 MB line costs a few hundred MB, briefly).
#
# Grades must not change: nbgrader scores a test cell by its first error, stderr stream or
# execute_result. These "decisive" outputs are never dropped for size: past the budget
# each is kept as a stub of at most STUB_BYTES (up to MAX_STUBS per cell). Other
# outputs (stdout, display_data) are cut or dropped.

LINE_COST = 10  # bytes nbformat's saved layout adds per line of text ("...\n",\n + indent)
STUB_BYTES = 2_000  # the most a decisive output keeps once its cell is over budget
MAX_STUBS = 100  # decisive outputs kept per cell past the budget; later ones are dropped
TRUNCATED = "... Output truncated ({} bytes over the limit) ..."
# nbgrader 0.9.6's Autograde.autograde_preprocessors, with Execute capped as outputs
# arrive and the byte caps after the line caps. In a config:
#     c.Autograde.autograde_preprocessors = AUTOGRADE_PREPROCESSORS
#     c.LimitOutputBytes.max_cell_bytes = ...; c.LimitOutputBytes.max_notebook_bytes = ...
AUTOGRADE_PREPROCESSORS = [
    "rnngrading.outputs.CappedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "rnngrading.outputs.LimitOutputBytes",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
_MARKER = re.compile(r"\n?\.\.\. Output truncated \((\d+) bytes over the limit\) \.\.\.\n")
_TB_CUT = "... Traceback truncated ..."  # nbgrader's LimitOutput says the same
_CHUNK = 1 << 20


def text_bytes(text):
    """Bytes a text output takes in a saved notebook: UTF-8 with JSON escapes, plus
    LINE_COST per line break. Measured a megabyte at a time, never copied whole."""
    size = 0
    for start in range(0, len(text), _CHUNK):
        chunk = text[start:start + _CHUNK]
        size += len(json.dumps(chunk, ensure_ascii=False).encode("utf-8", "surrogatepass")) - 2
        size += LINE_COST * chunk.count("\n")
    return size


def cut_text(text, room):
    """A prefix of `text` within `room` bytes (text_bytes; nearly the longest one), and
    the bytes cut."""
    room = max(room, 0)
    total = text_bytes(text)
    if total <= room:
        return text, 0
    kept = text[:room]
    size = text_bytes(kept)
    while size > room:
        kept = kept[:max(0, len(kept) * room // size - 1)]
        size = text_bytes(kept)
    return kept, total - size


def _value_bytes(value):
    if isinstance(value, str):
        return text_bytes(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sum(text_bytes(v) + LINE_COST for v in value)
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "replace"))


def output_bytes(output):
    """Bytes one output takes in a saved notebook (its text, data and metadata)."""
    kind = output.get("output_type")
    if kind == "stream":
        return _value_bytes(output.get("text", ""))
    if kind == "error":
        return (_value_bytes(output.get("ename", "")) + _value_bytes(output.get("evalue", ""))
                + _value_bytes(output.get("traceback", [])))
    if kind in ("execute_result", "display_data"):
        return (sum(_value_bytes(v) for v in output.get("data", {}).values())
                + _value_bytes(output.get("metadata", {})))
    return _value_bytes(dict(output))


def is_decisive(output):
    """True for the outputs nbgrader scores a test cell by: errors, stderr, results."""
    kind = output.get("output_type")
    return (kind in ("error", "execute_result")
            or kind == "stream" and output.get("name") == "stderr")


def _as_text(value):
    return "".join(value) if isinstance(value, list) else str(value)


def cap_output(output, room):
    """`output` cut to `room` bytes, in place: (the output or None if dropped, bytes cut).

    Stream text and text/plain keep their beginning; an error keeps its name, the start
    of its message and the end of its traceback (where the failing line is); other data
    (HTML, images, JSON) and metadata stay whole or go. A decisive output is never None.
    """
    size = output_bytes(output)
    if size <= room:
        return output, 0
    kind = output.get("output_type")
    if kind == "stream":
        output["text"], _ = cut_text(_as_text(output.get("text", "")), room)
        if not output["text"] and not is_decisive(output):
            return None, size
    elif kind == "error":
        output["ename"], _ = cut_text(_as_text(output.get("ename", "")), min(room, 200))
        left = room - text_bytes(output["ename"])
        output["evalue"], _ = cut_text(_as_text(output.get("evalue", "")), left // 2)
        left -= text_bytes(output["evalue"])
        lines, tail = [_as_text(line) for line in output.get("traceback", [])], []
        left -= text_bytes(_TB_CUT) + LINE_COST  # room for the note, if lines are cut
        for line in reversed(lines):
            cost = text_bytes(line) + LINE_COST
            if cost > left:
                if not tail:
                    tail.append(cut_text(line, left - LINE_COST)[0])
                break
            tail.insert(0, line)
            left -= cost
        output["traceback"] = ([_TB_CUT] if len(tail) < len(lines)
                               else []) + tail
    elif kind in ("execute_result", "display_data"):
        data, left = {}, room
        for mime in sorted(output.get("data", {}), key=lambda m: m != "text/plain"):
            value = output["data"][mime]
            cost = _value_bytes(value)
            if cost <= left:
                data[mime] = value
            elif mime == "text/plain":
                data[mime], _ = cut_text(_as_text(value), left)
            else:
                continue
            left -= _value_bytes(data[mime])
        if not data and not is_decisive(output):
            return None, size
        output["data"] = data or {"text/plain": ""}
        if _value_bytes(output.get("metadata", {})) > left:
            output["metadata"] = {}
    else:
        return None, size
    return output, size - output_bytes(output)


class OutputCap:
    """The byte budgets of one notebook's outputs: max_cell_bytes per code cell and
    max_notebook_bytes in all (-1: no limit). Feed a cell's outputs to add() in order,
    after start_cell(); a cut cell gets one stdout marker TRUNCATED.format(N), N the
    bytes cut from that cell."""

    def __init__(self, max_cell_bytes, max_notebook_bytes):
        self.max_cell_bytes = max_cell_bytes
        self.max_notebook_bytes = max_notebook_bytes
        self.notebook_used = 0
        self.start_cell()

    def start_cell(self):
        self.used, self.cut, self.stubs, self.marker = 0, 0, 0, None

    def forget_cell(self):
        """The cell's outputs were cleared (clear_output): its bytes are free again."""
        self.notebook_used -= self.used
        self.start_cell()

    def room(self):
        rooms = [limit - used for limit, used in ((self.max_cell_bytes, self.used),
                                                   (self.max_notebook_bytes, self.notebook_used))
                 if limit >= 0]
        return max(0, min(rooms)) if rooms else float("inf")

    def add(self, outputs, output):
        """Append `output` to the list `outputs`, cut to the budget left (or not at all).

        returns True if `output` (maybe cut) was appended as the list's next item
        """
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            found = _MARKER.fullmatch(_as_text(output.get("text", "")))
            if found:  # a marker from an earlier pass: merged into this cell's marker
                self._mark(outputs, int(found.group(1)))
                return False
        room = self.room()
        if is_decisive(output) and room < STUB_BYTES:
            if self.stubs >= MAX_STUBS:
                self._mark(outputs, output_bytes(output))
                return False
            self.stubs += 1
            kept, cut = cap_output(output, STUB_BYTES)  # stubs are not charged to the budget
        else:
            kept, cut = cap_output(output, room)
            if kept is not None:
                size = output_bytes(kept)
                self.used += size
                self.notebook_used += size
        if kept is not None:
            outputs.append(kept)
        if cut:
            self._mark(outputs, cut)
        return kept is not None

    def _mark(self, outputs, cut):
        self.cut += cut
        text = "\n" + TRUNCATED.format(self.cut) + "\n"
        if self.marker is None:
            self.marker = nbformat.v4.new_output("stream", name="stdout", text=text)
            outputs.append(self.marker)
        else:
            self.marker["text"] = text


class LimitOutputBytes(NbGraderPreprocessor):
    """Autograde preprocessor: cap each code cell's outputs, and all of them, in bytes.

    Put it after nbgrader's LimitOutput (which counts lines): a cell over max_cell_bytes,
    or a notebook over max_notebook_bytes, keeps the beginning of its output and a line
    "... Output truncated (N bytes over the limit) ..."; images and other data that do
    not fit are dropped. Scores do not change (see is_decisive). CappedExecute reads its
    caps from here too: c.LimitOutputBytes.max_cell_bytes is the one setting.
    """

    max_cell_bytes = Integer(1_000_000, help="most bytes of output one code cell keeps "
                             "(-1: no limit)").tag(config=True)
    max_notebook_bytes = Integer(10_000_000, help="most bytes of output the notebook keeps "
                                 "(-1: no limit)").tag(config=True)

    def preprocess(self, nb, resources):
        self._cap = OutputCap(self.max_cell_bytes, self.max_notebook_bytes)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code" or not cell.get("outputs"):
            return cell, resources
        self._cap.start_cell()
        kept = []
        for output in cell.outputs:
            self._cap.add(kept, output)
        cell.outputs = kept
        return cell, resources


class CappedExecute(Execute):
    """nbgrader's Execute, with LimitOutputBytes's caps applied as outputs arrive.

    Each output the kernel sends is cut to the budget left before it is kept, so the
    grading process never holds more than the caps plus the message being handled. Use
    it in place of Execute in c.Autograde.autograde_preprocessors, and LimitOutputBytes
    after the other preprocessors: outputs that bypass nbclient's output() (display
    updates, the error appended from an execute reply) are capped there.
    """

    def preprocess(self, nb, resources=None, km=None):
        caps = LimitOutputBytes(config=self.config)
        self._cap = OutputCap(caps.max_cell_bytes, caps.max_notebook_bytes)
        self._cap_cell = None
        return super().preprocess(nb, resources, km)

    def output(self, outs, msg, display_id, cell_index):
        if self.output_hook_stack[msg["parent_header"].get("msg_id")]:
            return super().output(outs, msg, display_id, cell_index)  # an Output widget's
        if not hasattr(self, "_cap"):  # execute_cell() without preprocess()
            caps = LimitOutputBytes(config=self.config)
            self._cap = OutputCap(caps.max_cell_bytes, caps.max_notebook_bytes)
            self._cap_cell = None
        if cell_index != self._cap_cell:
            self._cap.start_cell()
            self._cap_cell = cell_index
        elif self.clear_before_next_output or not outs:
            self._cap.forget_cell()
        out = super().output(outs, msg, display_id, cell_index)
        if out is None:
            return None
        index = len(outs) - 1
        outs.pop()
        kept = self._cap.add(outs, out)
        if display_id and not kept:  # update_display_data must not land on another output
            indices = self._display_id_map.get(display_id, {}).get(cell_index, [])
            if index in indices:
                indices.remove(index)
        return out if kept else None
