#!/usr/bin/env python3
"""uftrace2replay: turn a uftrace recording of a C program into a stkbar-replay v1 trace.

Inputs
------
* The call tree, as the text that ``uftrace replay`` prints with ``-f tid``
  or ``-f none`` (two spaces of indentation per call level after the
  optional ``[ TID] |`` column).  Give either the uftrace data directory --
  the converter then runs
  ``uftrace replay -d DIR -f tid --no-pager --no-event --depth=65534``
  itself (uftrace shows only 1024 levels unless told) -- or a file holding
  that text, or ``-`` to read it from standard input.  The recording must be
  of one thread: a second TID is an error (so is any ``LOST`` record).
* The ``.su`` files that ``gcc -fstack-usage`` wrote when the program was
  compiled (files, or directories searched recursively for ``*.su``).  A line
  reads ``FILE:LINE:COL:NAME<TAB>BYTES<TAB>QUALIFIER``; for code compiled as
  C++, NAME is a demangled signature and the converter keeps only the bare
  function name, as uftrace's default demangling shows it.  (g++ 12 writes
  just ``)`` for variadic functions; the name is then read from the source
  file at FILE:LINE:COL, FILE taken relative to the ``.su`` file's folder or
  the current one.)

Algorithm
---------
1. Frame sizes.  Every function named in the ``.su`` files is a *program
   function*.  Its replay frame is ``max(16, round_up_to_8(BYTES + extra))``
   where ``extra`` is ``--extra-frame-bytes`` (default 0: on x86-64 gcc's
   figure already counts the 8-byte return address -- a frameless leaf
   reports 8).  ``dynamic`` and ``dynamic,bounded`` entries contribute their
   static figure (for ``dynamic`` that is a lower bound: the alloca/VLA part
   is unknown).  A name listed twice with different sizes gets the larger.
2. Parsing.  Each replay line is an entry ``NAME(ARGS) {``, a merged leaf
   ``NAME(ARGS);`` (an entry immediately followed by its exit) or an exit
   ``}`` (optionally ``} /* NAME */``).  The indentation is the call depth
   uftrace assigned; before each entry the converter closes any frames of its
   own that are at that depth or deeper, so a missing exit record cannot
   shift the rest of the trace; an exit closes the frame at its depth (and
   any left open inside it), an exit deeper than the stack is ignored.
   Event comments (``/* ... */``) and the "uftrace stopped tracing" trailer
   are skipped.  A ``@lib`` suffix on a name is dropped.
3. Filtering.  Entries of program functions become ``call NAME`` and their
   exits ``ret``.  Every other function (library calls: ``strlen``,
   ``memcpy``, ...) is dropped -- it occupies no replay frame, but program
   functions it calls back (e.g. a ``qsort`` comparator) are kept at the
   depth of the innermost kept frame + 1.  The allocator calls become
   ``alloc BYTES`` events charged to the innermost kept frame:
   ``malloc``: its last shown argument; ``calloc``: the product of its last
   two shown arguments; ``realloc``: its last shown argument (record them
   with ``-A malloc@arg1 -A calloc@arg1,arg2 -A realloc@arg2``).  Sizes of 0
   and allocations made while no program frame is live are dropped.
4. Window.  By default the trace starts with the first program call.  With
   ``--start-at FUNC[#N]`` (the N-th entry of FUNC, default 1) or
   ``--skip-events K`` (the first K events of the full conversion are
   skipped) it starts later; then the program frames live at the window's
   start are first re-entered with ``call`` events, outermost first, so the
   trace begins at depth 0 and the depth seen in the window is the program's
   true stack depth.  ``ret``s of frames opened before the window are never
   emitted unmatched.
5. Output.  ``#`` provenance lines (``--source`` text, converter version and
   options), ``stkbar-replay 1``, then the events in order; a
   ``func NAME FRAME_BYTES`` line precedes each function's first ``call``.
   The output stops after ``--max-events`` events (``call``, ``ret`` and
   ``alloc`` lines count; ``func`` lines do not); the trace may end at any
   depth.  A summary (events, functions, depths, allocations) goes to stderr.

Bad input (an unreadable file, no frame sizes, a line that is not uftrace
replay output, a second thread, LOST records, an allocator call without a
size, a window that never starts, uftrace failing) prints one line to
stderr and exits 2.
"""

import argparse
import os
import re
import subprocess
import sys

VERSION = "1.0"
MIN_FRAME = 16
MAX_FRAME = 1048576
ALLOC_FUNCS = ("malloc", "calloc", "realloc")

SU_RE = re.compile(r"^(?P<loc>.*):(?P<line>\d+):(?P<col>\d+):(?P<name>[^\t]+)\t(?P<bytes>\d+)\t(?P<qual>\S+)\s*$")
ENTRY_RE = re.compile(r"^(?P<name>[^\s(]+)\((?P<args>.*)\)\s*(?P<kind>[{;])\s*$")
TID_RE = re.compile(r"^\s*\[\s*(\d+)\] \| ?(.*)$")
EXIT_RE = re.compile(r"^\}(\s*=.*?;)?\s*(/\*.*\*/)?\s*$")


class InputError(Exception):
    """Raised for any malformed input; reported as one line, exit status 2."""


def round_up8(n):
    return (n + 7) // 8 * 8


def su_name(text):
    """The name uftrace shows for a .su function name.

    For C that is the name itself.  g++ writes a demangled signature such as
    ``const char* aux_upvalue(TValue*, int, TValue**, GCObject**)``; uftrace's
    default (simple) demangling shows it as ``aux_upvalue``: drop the
    parameter list and the return type.
    """
    text = text.strip()
    while text.endswith(")"):
        i = open_paren(text)
        if i is None:
            return None
        before = text[:i].rstrip()
        if before.endswith(")"):
            # a function returning a function pointer: RET (* NAME(PARAMS))(PARAMS)
            j = open_paren(before)
            if j is None:
                return None
            text = before[j + 1:-1].strip()
            continue
        text = re.sub(r"<.*>$", "", before)  # template arguments
        text = text.split()[-1].lstrip("*&") if text.split() else ""
        break
    if not text or any(c.isspace() or c in "()" for c in text):
        return None
    return text


def name_at(su_path, src, line, col):
    """The identifier at LINE:COL of source file src (relative to the .su's directory or cwd)."""
    for cand in (os.path.join(os.path.dirname(su_path), src), src):
        try:
            with open(cand, encoding="utf-8", errors="replace") as f:
                for i, text in enumerate(f, 1):
                    if i == line:
                        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[col - 1:])
                        return m.group(0) if m else None
        except OSError:
            continue
    return None


def open_paren(text):
    """Index of the '(' matching the ')' that ends text, or None."""
    level = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == ")":
            level += 1
        elif text[i] == "(":
            level -= 1
            if level == 0:
                return i
    return None


def read_su(paths, extra):
    """Return {name: frame_bytes} and a count of dynamic entries."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, _dirs, names in os.walk(p):
                files.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(".su"))
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise InputError("no such .su file or directory: %s" % p)
    frames = {}
    dynamic = set()
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    m = SU_RE.match(line.rstrip("\n"))
                    if not m:
                        raise InputError("%s:%d: not a -fstack-usage line" % (path, lineno))
                    name = su_name(m.group("name"))
                    if not name:  # g++ writes ")" for variadic functions
                        name = name_at(path, m.group("loc"), int(m.group("line")), int(m.group("col")))
                    if not name:
                        raise InputError("%s:%d: cannot find the function name in %r (nor in its source)"
                                         % (path, lineno, m.group("name")))
                    size = max(MIN_FRAME, round_up8(int(m.group("bytes")) + extra))
                    if size > MAX_FRAME:
                        raise InputError("%s:%d: frame of %s is %d bytes, over %d" % (path, lineno, name, size, MAX_FRAME))
                    if m.group("qual") == "dynamic":
                        dynamic.add(name)
                    frames[name] = max(size, frames.get(name, 0))
        except OSError as e:
            raise InputError("cannot read %s: %s" % (path, e.strerror))
    if not frames:
        raise InputError("no frame sizes found in the .su input")
    return frames, dynamic


def parse_int(text):
    text = text.strip()
    try:
        return int(text, 0)
    except ValueError:
        return None


def alloc_bytes(name, args):
    """Bytes requested by an allocator call, from its displayed arguments."""
    vals = [parse_int(a) for a in args.split(",")] if args.strip() else []
    if any(v is None for v in vals):
        return None
    if name == "calloc":
        return vals[-1] * vals[-2] if len(vals) >= 2 else None
    return vals[-1] if vals else None


def replay_lines(source):
    """Yield the lines of uftrace replay output from a data dir, a file or stdin."""
    if source == "-":
        yield from sys.stdin
        return
    if os.path.isdir(source):
        cmd = ["uftrace", "replay", "-d", source, "-f", "tid", "--no-pager", "--no-event",
               "--depth=65534"]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, encoding="utf-8", errors="replace")
        except OSError as e:
            raise InputError("cannot run uftrace: %s" % e.strerror)
        finished = False
        try:
            yield from proc.stdout
            finished = True
        finally:
            proc.stdout.close()
            if finished:
                err = proc.stderr.read()
                if proc.wait() != 0:
                    first = (err.strip().splitlines() or ["exit status %d" % proc.returncode])[0]
                    raise InputError("uftrace replay failed: %s" % first)
            else:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        return
    try:
        with open(source, encoding="utf-8", errors="replace") as f:
            yield from f
    except OSError as e:
        raise InputError("cannot read %s: %s" % (source, e.strerror))


def raw_events(lines, frames, dropped):
    """Yield ('call', name) / ('ret',) / ('alloc', n) over the whole recording.

    Keeps its own stack of every uftrace frame (kept or dropped) and resyncs it
    to uftrace's indentation before each entry.
    """
    stack = []  # True for a kept (program) frame, False for a dropped one
    tid = None
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("uftrace stopped tracing"):
            break  # trailer listing the frames still open when recording ended
        m = TID_RE.match(line)
        if m:
            if tid is None:
                tid = m.group(1)
            elif m.group(1) != tid:
                raise InputError("line %d: a second thread (TID %s after %s): only single-threaded "
                                 "recordings can be converted" % (lineno, m.group(1), tid))
            line = m.group(2)
        body = line.lstrip(" ")
        if body.startswith("/*"):
            if body.startswith("/* LOST"):
                raise InputError("line %d: uftrace lost records (%s); record again with a larger --buffer"
                                 % (lineno, body.strip()))
            continue  # an event such as /* linux:schedule */
        indent = len(line) - len(body)
        if body.startswith("}"):
            if not EXIT_RE.match(body):
                raise InputError("line %d: not uftrace replay output: %r" % (lineno, body[:80]))
            depth = indent // 2
            while len(stack) > depth:  # normally exactly one frame: the innermost
                if stack.pop():
                    yield ("ret",)
            continue
        m = ENTRY_RE.match(body)
        if not m or indent % 2:
            raise InputError("line %d: not uftrace replay output: %r" % (lineno, body[:80]))
        depth = indent // 2
        while len(stack) > depth:
            if stack.pop():
                yield ("ret",)
        name = m.group("name").split("@", 1)[0]
        leaf = m.group("kind") == ";"
        if name in frames:
            yield ("call", name)
            if leaf:
                yield ("ret",)
            else:
                stack.append(True)
            continue
        if name in ALLOC_FUNCS:
            n = alloc_bytes(name, m.group("args"))
            if n is None:
                raise InputError("line %d: %s without a numeric size argument (record it with -A %s@argN)"
                                 % (lineno, name, name))
            if n > 0:
                yield ("alloc", n)
        else:
            dropped[name] = dropped.get(name, 0) + 1
        if not leaf:
            stack.append(False)


def parse_start(spec):
    if spec is None:
        return None
    name, _, nth = spec.partition("#")
    if not name or (nth and (not nth.isdigit() or int(nth) < 1)):
        raise InputError("bad --start-at %r (want FUNC or FUNC#N with N >= 1)" % spec)
    return name, int(nth) if nth else 1


def convert(events, frames, start, skip, max_events):
    """Apply the window and the cap; yield output events with depths tracked."""
    live = []  # names of the kept frames open in the full recording
    started = start is None and skip == 0
    seen_start = 0
    index = 0
    emitted = 0
    wdepth = 0  # depth inside the window; frames below it predate the window
    for ev in events:
        if not started:
            if start is not None and ev[0] == "call" and ev[1] == start[0]:
                seen_start += 1
                if seen_start == start[1]:
                    started = True
            elif start is None and index >= skip:
                started = True
            if started:
                for name in live:  # re-enter the frames live at the window's start
                    if emitted >= max_events:
                        return
                    yield ("call", name)
                    emitted += 1
                wdepth = len(live)
        index += 1
        if ev[0] == "call":
            live.append(ev[1])
        elif ev[0] == "ret":
            live.pop()
        if not started:
            continue
        if ev[0] == "ret":
            if wdepth == 0:
                continue
            wdepth -= 1
        elif ev[0] == "call":
            wdepth += 1
        elif wdepth == 0:
            continue  # alloc outside any frame
        if emitted >= max_events:
            return
        yield ev
        emitted += 1
    if not started:
        raise InputError("the window never starts (no %s in the recording)"
                         % ("entry #%d of %s" % (start[1], start[0]) if start else "event %d" % skip))


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert uftrace output plus gcc -fstack-usage .su files into a stkbar-replay v1 trace.",
        epilog="Record with: uftrace record -D 8192 --max-stack=8192 -A malloc@arg1 -A calloc@arg1,arg2 "
               "-A realloc@arg2 PROG ... (program built with gcc -pg -fstack-usage). Exit status 2 on bad input. "
               "The module docstring describes the algorithm.")
    ap.add_argument("input", help="uftrace data directory (the converter runs `uftrace replay`), "
                                  "or a file with `uftrace replay -f tid` (or `-f none`) output, or - for stdin")
    ap.add_argument("--su", action="append", required=True, metavar="PATH",
                    help=".su file or directory searched recursively for *.su (repeatable)")
    ap.add_argument("-o", "--output", default="-", help="output trace file (default: stdout)")
    ap.add_argument("--max-events", type=int, default=150000, metavar="N",
                    help="stop after N call/ret/alloc events (default 150000)")
    ap.add_argument("--start-at", metavar="FUNC[#N]",
                    help="start the window at the N-th entry of FUNC (live frames are re-entered first)")
    ap.add_argument("--skip-events", type=int, default=0, metavar="K",
                    help="start the window after the first K events of the full conversion")
    ap.add_argument("--extra-frame-bytes", type=int, default=0, metavar="B",
                    help="bytes added to each .su figure before rounding (default 0: x86-64 .su includes the return address)")
    ap.add_argument("--source", default="", metavar="TEXT",
                    help="provenance text written as # comment lines (use \\n for several lines)")
    args = ap.parse_args(argv)
    try:
        if args.max_events < 1:
            raise InputError("--max-events must be at least 1")
        if args.skip_events < 0:
            raise InputError("--skip-events must not be negative")
        if args.start_at and args.skip_events:
            raise InputError("--start-at and --skip-events exclude each other")
        start = parse_start(args.start_at)
        frames, dynamic = read_su(args.su, args.extra_frame_bytes)
        out_lines = []
        header = ["# " + l for l in args.source.replace("\\n", "\n").splitlines() if l.strip()]
        opts = "--max-events %d" % args.max_events
        if args.start_at:
            opts += " --start-at %s" % args.start_at
        if args.skip_events:
            opts += " --skip-events %d" % args.skip_events
        if args.extra_frame_bytes:
            opts += " --extra-frame-bytes %d" % args.extra_frame_bytes
        header.append("# converter: scripts/uftrace2replay.py %s (%s)" % (VERSION, opts))
        declared = set()
        depth = max_depth = depth_sum = n = calls = allocs = alloc_bytes_total = 0
        body = []
        dropped = {}
        for ev in convert(raw_events(replay_lines(args.input), frames, dropped), frames, start,
                          args.skip_events, args.max_events):
            if ev[0] == "call":
                name = ev[1]
                if name not in declared:
                    declared.add(name)
                    body.append("func %s %d" % (name, frames[name]))
                body.append("call " + name)
                depth += 1
                calls += 1
                max_depth = max(max_depth, depth)
            elif ev[0] == "ret":
                body.append("ret")
                depth -= 1
            else:
                body.append("alloc %d" % ev[1])
                allocs += 1
                alloc_bytes_total += ev[1]
            depth_sum += depth
            n += 1
        if n == 0:
            raise InputError("no program function calls found (do the .su files match the traced binary?)")
        out_lines = header + ["stkbar-replay 1"] + body
        text = "\n".join(out_lines) + "\n"
        if args.output == "-":
            sys.stdout.write(text)
        else:
            try:
                with open(args.output, "w", encoding="utf-8") as f:
                    f.write(text)
            except OSError as e:
                raise InputError("cannot write %s: %s" % (args.output, e.strerror))
        dyn_used = sorted(dynamic & declared)
        sys.stderr.write(
            "events %d (calls %d, rets %d, allocs %d = %d bytes); functions %d; max depth %d; "
            "mean depth %.2f; end depth %d; dynamic-frame functions used: %s\n"
            % (n, calls, n - calls - allocs, allocs, alloc_bytes_total, len(declared), max_depth,
               depth_sum / n, depth, ", ".join(dyn_used) or "none"))
        top = sorted(dropped.items(), key=lambda kv: -kv[1])[:8]
        sys.stderr.write("dropped (not in the .su files) while reading: %d distinct, most called: %s\n"
                         % (len(dropped), ", ".join("%s %d" % kv for kv in top) or "none"))
    except InputError as e:
        sys.stderr.write("uftrace2replay: error: %s\n" % e)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
