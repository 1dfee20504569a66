"""Writing the quarters: the table files of one quarter, damage, deleted lists, zips.

:class:`QuarterWriter` holds the open files of one quarter and counts what an
ingest must find in each; :class:`ReleaseWriter` opens and closes quarters as
the cases reach them, zips them, and collects the ingest part of the truth.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from faerslake.errors import InputError
from faerslake.synthetic.layouts import TABLES, ReleaseLayout
from faerslake.synthetic.model import Report

_MARKER = ".faerslake-generate"
_CONTAINER = re.compile(r"^f?aers_ascii_\d{4}q[1-4](\.zip)?$", re.I)


class QuarterWriter:
    """Open files of one quarter; counts what an ingest must find in each."""

    def __init__(self, layout: ReleaseLayout, root: Path):
        self.layout = layout
        self.root = root
        self.handles = {}
        self.keys: dict[str, list[str]] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.deleted: list[int] = []
        self.deleted_info: dict | None = None
        lay = layout
        (root / lay.data_dir).mkdir(parents=True, exist_ok=True)
        for t in TABLES:
            f = open(root / lay.data_dir / lay.files[t], "w", encoding="latin-1", newline="",
                     buffering=1 << 20)
            if t in lay.bom_tables:
                f.write("\xef\xbb\xbf")  # UTF-8 BOM bytes, written through latin-1
            f.write("$".join(h for h, _ in lay.columns[t]) + ("$" if lay.trailing_header else "") + lay.eol)
            self.handles[t] = f
            self.keys[t] = [k for _, k in lay.columns[t]]
            self.counts[t] = dict(lines_read=0, rows_loaded=0, rows_repaired=0, lines_repaired=0,
                                  rows_quarantined=0)
        self.end = ("$" if lay.trailing_row else "") + lay.eol
        self.rows = 0
        self.legacy = lay.era == "legacy"
        n_key = 1 if self.legacy else 2
        self.rest = {t: self.keys[t][n_key:] for t in TABLES}
        # the fixed shapes the fast paths in write() rely on
        assert self.rest["outc"] == ["outc_cod"] and self.rest["rpsr"] == ["rpsr_cod"]
        assert self.rest["indi"] == ["drug_seq", "indi_pt"] and self.rest["reac"][0] == "pt"
        self.reac_tail = "$" * (len(self.rest["reac"]) - 1)

    def _line(self, t: str, prefix: str, d: dict[str, str]) -> str:
        return prefix + "$" + "$".join([d.get(k, "") for k in self.rest[t]])

    def _emit(self, t: str, lines: list[str]) -> None:
        if not lines:
            return
        end = self.end
        self.handles[t].write(end.join(lines) + end)
        c = self.counts[t]
        c["lines_read"] += len(lines)
        c["rows_loaded"] += len(lines)
        self.rows += len(lines)

    def _emit_broken(self, t: str, line: str, after_fields: int) -> None:
        """One record split over two physical lines after field ``after_fields`` (repairable)."""
        cut = _field_cut(line, after_fields)
        self.handles[t].write(line[:cut] + self.layout.eol + line[cut:] + self.end)
        self._count_repaired(t, lines=2, rows=1)

    def _emit_glued(self, t: str, first: str, second: str) -> None:
        """Two whole records on one physical line (each keeps its trailing '$')."""
        self.handles[t].write(first + self.end.rstrip("\r\n") + second + self.end)
        self._count_repaired(t, lines=1, rows=2)

    def _count_repaired(self, t: str, lines: int, rows: int) -> None:
        """The audit of ``lines`` physical lines that the ingest repairs into ``rows`` records."""
        c = self.counts[t]
        c["lines_read"] += lines
        c["rows_loaded"] += rows
        c["rows_repaired"] += rows
        c["lines_repaired"] += lines
        self.rows += rows

    def write(self, r: Report) -> None:
        # every table starts with the report key (legacy ISR) or primaryid$caseid (FAERS)
        prefix = str(r.key) if self.legacy else f"{r.key}${r.caseid}"
        demo = r.demo if not self.legacy else {**r.demo, "caseid": str(r.caseid)}
        line = self._line("demo", prefix, demo)
        if r.damage == "dollar_demo":
            # a literal '$' inside MFR_NUM: one field too many, cannot be repaired
            self.handles["demo"].write(line + self.end)
            self.counts["demo"]["lines_read"] += 1
            self.counts["demo"]["rows_quarantined"] += 1
        elif r.damage == "break_demo":
            self._emit_broken("demo", line, 10)
        else:
            self._emit("demo", [line])
        dlines = [self._line("drug", prefix, d) for d in r.drugs]
        if r.damage == "glue_drug" and len(dlines) >= 2:
            self._emit_glued("drug", dlines[0], dlines[1])
            dlines = dlines[2:]
        elif r.damage == "break_drug":
            self._emit_broken("drug", dlines[0], 5)
            dlines = dlines[1:]
        self._emit("drug", dlines)
        p = prefix + "$"
        self._emit("reac", [p + pt + self.reac_tail for pt in r.reacs])
        self._emit("outc", [p + o for o in r.outcs])
        self._emit("rpsr", [p + o for o in r.rpsrs])
        self._emit("ther", [self._line("ther", prefix, th) for th in r.thers])
        self._emit("indi", [p + seq + "$" + pt for seq, pt in r.indis])

    def close(self, rng: random.Random, extra_deleted: list[int]) -> list[dict]:
        """Close the tables, write the deleted list and the extra files; the ingest truth per table."""
        lay = self.layout
        for f in self.handles.values():
            f.close()
        if lay.deleted_path:
            self._write_deleted_list(rng, extra_deleted)
        for rel, data in lay.extras:
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return [dict(quarter=lay.quarter, table=t, file=f"{lay.data_dir}/{lay.files[t]}", **self.counts[t])
                for t in TABLES]

    def _write_deleted_list(self, rng: random.Random, extra_deleted: list[int]) -> None:
        lay = self.layout
        lines = [str(x) for x in self.deleted] + [str(x) for x in extra_deleted]
        rng.shuffle(lines)
        if lines:  # FDA's lists repeat ids and hold blank / one-space lines
            lines.insert(rng.randrange(len(lines) + 1), lines[rng.randrange(len(lines))])
        lines.insert(0, " ")
        lines.insert(rng.randrange(1, len(lines) + 1), "")
        p = self.root / lay.deleted_path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes((lay.eol.join(lines) + lay.eol).encode("ascii"))
        ids = [x for x in lines if x.strip()]
        self.deleted_info = dict(quarter=lay.quarter, file=lay.deleted_path, lines=len(lines),
                                 caseid_lines=len(ids), distinct_caseids=len(set(ids)))


def _field_cut(line: str, after_fields: int) -> int:
    """Index of the '$' that ends field number ``after_fields`` (the continuation starts with '$')."""
    idx = -1
    for _ in range(after_fields):
        idx = line.index("$", idx + 1)
    return idx


def _zip_folder(folder: Path, zip_path: Path, quarter: str) -> None:
    """Deterministic zip (fixed times, sorted names, directory entries first)."""
    y, qn = int(quarter[:4]), int(quarter[5])
    stamp = (max(y, 1980) if qn < 4 else max(y + 1, 1980), (qn * 3) % 12 + 1, 15, 12, 0, 0)
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    dirs = sorted({p.parent.relative_to(folder).as_posix() for p in files} - {"."})
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for d in dirs:
            zi = zipfile.ZipInfo(d + "/", stamp)
            zi.external_attr = 0o40755 << 16
            zf.writestr(zi, b"")
        for p in files:
            zi = zipfile.ZipInfo(p.relative_to(folder).as_posix(), stamp)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            with open(p, "rb") as src, zf.open(zi, "w", force_zip64=True) as out:
                shutil.copyfileobj(src, out, 1 << 20)
    os.replace(tmp, zip_path)


def prepare_dest(dest: Path) -> None:
    """Make ``dest`` ready: quarters of an earlier ``generate`` run there are removed
    (stale quarters would contradict the new truth); anyone else's are refused."""
    dest.mkdir(parents=True, exist_ok=True)
    ours = (dest / _MARKER).exists() or (dest / "_truth.json").exists()
    stale = [p for p in dest.iterdir() if _CONTAINER.match(p.name)]
    if stale and not ours:
        raise InputError(f"{dest} already holds FDA quarters not written by faerslake generate "
                         f"({stale[0].name}); give an empty or new --dest folder")
    (dest / _MARKER).write_text("written by faerslake generate; its quarters are replaced on the next run\n")
    (dest / "_truth.json").unlink(missing_ok=True)
    for p in stale + [p for p in dest.iterdir() if p.name.startswith(".") and p.name.endswith(".partial")]:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


class ReleaseWriter:
    """The quarters under ``dest``: opened when a case first writes into one, finished in order."""

    def __init__(self, dest: Path, layouts: list[ReleaseLayout], rng: random.Random, as_zip: bool,
                 extra_deleted: dict[int, list[int]], log: Callable[[str], None]):
        self.dest = dest
        self.layouts = layouts
        self.rng = rng
        self.as_zip = as_zip
        self.extra_deleted = extra_deleted
        self.log = log
        self.staging = {i: dest / (f".{lay.container}.partial" if as_zip else lay.container)
                        for i, lay in enumerate(layouts)}
        self.open: dict[int, QuarterWriter] = {}
        self.ingest_truth: list[dict] = []
        self.deleted_lists: list[dict] = []
        self.containers: list[str] = []

    def quarter(self, p: int) -> QuarterWriter:
        if p not in self.open:
            self.open[p] = QuarterWriter(self.layouts[p], self.staging[p])
        return self.open[p]

    def write_case(self, reports: list[Report], deleted_in: list[int]) -> None:
        """Each report into its quarter, the case id onto the deleted lists that name it."""
        for r in reports:
            self.quarter(r.pos).write(r)
        for d in deleted_in:
            self.quarter(d).deleted.append(reports[0].caseid)

    def finish(self, p: int) -> int:
        """Close (and zip) quarter ``p``; the rows written into it."""
        w = self.quarter(p)
        lay = self.layouts[p]
        entries = w.close(self.rng, self.extra_deleted.get(p, []))
        if self.as_zip:
            name = f"{lay.container}.zip"
            _zip_folder(self.staging[p], self.dest / name, lay.quarter)
            shutil.rmtree(self.staging[p])
            prefix = f"{name}!/"
        else:
            name = lay.container
            prefix = f"{name}/"
        for e in entries:
            e["file"] = prefix + e["file"]
        self.ingest_truth.extend(entries)
        if w.deleted_info:
            self.deleted_lists.append({**w.deleted_info, "file": prefix + w.deleted_info["file"]})
        self.containers.append(name)
        del self.open[p]
        self.log(f"wrote {name} ({lay.quarter})")
        return w.rows

    def bytes_written(self) -> int:
        return sum((self.dest / c).stat().st_size if self.as_zip else
                   sum(f.stat().st_size for f in (self.dest / c).rglob("*") if f.is_file())
                   for c in self.containers)

    def write_truth(self, doc: dict) -> Path:
        truth_path = self.dest / "_truth.json"
        tmp = truth_path.with_name("._truth.json.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, truth_path)
        return truth_path
