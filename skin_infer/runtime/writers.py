"""Writers for results, for every engine: ``.json`` (a list of images), ``.jsonl`` (one image a line), ``.csv``
(one row per region) and ``.parquet`` (a dataset folder of part files, one typed row per region plus the
image's JSON; needs pyarrow).

``check_output`` is the one check of ``--out`` before any work: an existing output is refused unless the run
resumes it (or overwrites it). Results go to a progress file beside the target, ``.NAME.partial``, flushed after
every image, and are renamed into place when the writer closes (normally, on Ctrl-C or on SIGTERM): the target
is always a complete, valid file. A run killed outright (``kill -9``, power loss) leaves the progress file,
which ``--resume`` reads: every image finished before the kill is kept, a record cut mid-write is dropped and
its image analysed again. Parquet parts are each written whole and renamed into the dataset, so a kill loses at
most the part being filled.

Resume is keyed on the files done and on the run's identity (``AnalysisOptions.identity``: the models'
checksums and the options that change answers), which every record carries as ``models_id``; a resume copies
the earlier records byte for byte and appends. Every record is one line (a JSON object, or the CSV rows of one
image), so a cut is always at the end. CSV text cells that a spreadsheet would run as a formula (``=``, ``+``,
``-``, ``@``, tab, CR) get a leading ``'``, as OWASP recommends; numbers never do.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import SkinInferError
from .files import default_mode
from .results import TEXT_COLUMNS, ImageResult, csv_columns

FORMATS = (".csv", ".json", ".jsonl", ".parquet")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ID_COLUMN = "models_id"
PARQUET_PART_IMAGES = 256  # images per Parquet part file


def progress_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def same_file_key(file: str) -> str:
    """How resume recognises an image: its real path, so `photos/a.jpg`, `./photos/a.jpg` and the absolute
    path are one image (a URI is its own key)."""
    return file if "://" in file else os.path.realpath(file)


def record_key(file: str, frame=None) -> str:
    """What resume skips: an image (by its real path), or one frame of a video."""
    key = same_file_key(file)
    return key if frame in (None, "") else f"{key}#{int(float(frame))}"


def check_output(path: Path, resume: bool, overwrite: bool = False) -> None:
    """Refuse an ``--out`` this run cannot write, before any model is loaded or image read (SkinInferError)."""
    if resume and overwrite:
        raise SkinInferError("--resume keeps what --out holds and --overwrite replaces it: choose one.")
    _check_target(path)
    started = path.exists() or progress_path(path).exists()
    if started and not resume and not overwrite:
        raise SkinInferError(
            f"--out {path} already exists: add --resume to continue it, --overwrite to replace it, or give a new name."
        )


def _check_target(path: Path) -> None:
    kind = path.suffix.lower()
    if kind not in FORMATS:
        raise SkinInferError(f"--out {path}: unknown format; use a .csv, .json, .jsonl or .parquet file name.")
    if not path.parent.is_dir():
        raise SkinInferError(f"--out {path}: folder {path.parent} does not exist; create it first.")
    if not os.access(path.parent, os.W_OK):
        raise SkinInferError(f"--out {path}: folder {path.parent} is not writable.")
    if kind == ".parquet":
        if path.exists() and not path.is_dir():
            raise SkinInferError(
                f"--out {path}: is a file, but a .parquet output is a dataset folder; give a new name."
            )
    elif path.is_dir():
        raise SkinInferError(f"--out {path}: is a folder; give a file name (results.csv).")
    elif path.exists() and not path.is_file():
        raise SkinInferError(f"--out {path}: is not a regular file; give a file name (results.csv).")


def _neutral(column: str, value):
    if column in TEXT_COLUMNS and isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _unneutral(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SkinInferError(f"{path}: cannot resume from it, it is not UTF-8 text; write to a new file.") from None
    except OSError as exc:
        raise SkinInferError(f"{path}: cannot be read to resume ({exc.strerror or exc}).") from None


def _json_records(text: str, path: Path) -> list[tuple[dict, str | None]]:
    """(record, its line as written) per image (JSONL, or the JSON list this writer writes); a cut last line is
    dropped. A JSON document written by something else (pretty-printed) has no lines to keep: ``None``."""
    stripped = text.strip()
    document = None
    if stripped.startswith("[") and stripped.endswith("]"):  # a whole JSON document
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError:
            document = None
        if document is not None and (not isinstance(document, list) or not all(isinstance(r, dict) for r in document)):
            raise SkinInferError(f"{path}: cannot resume, it is JSON but not a list of image records.")
    lines = [line.strip().removeprefix(",").removesuffix(",").strip() for line in text.splitlines()]
    lines = [line for line in lines if line not in ("", "[", "]")]
    records = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if document is not None:  # one record over several lines: not this writer's layout
                return [(r, None) for r in document]
            if i == len(lines) - 1:  # the record being written when the run stopped
                break
            raise SkinInferError(
                f"{path}: cannot resume, line {i + 1} is not a JSON image record; write to a new file."
            ) from None
        if not isinstance(record, dict) or "file" not in record or "status" not in record:
            raise SkinInferError(f"{path}: cannot resume, it holds something other than image records.")
        records.append((record, line))
    return records


def _csv_rows(text: str, path: Path, columns: list[str], stopped: bool) -> list[list[str]]:
    """CSV rows of whole images, as written: an image with a malformed row loses all its rows (it is analysed
    again), and so does the last image of a ``stopped`` run's progress file, whose rows may have been cut."""
    try:
        header, *rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise SkinInferError(f"{path}: cannot resume, it is not valid CSV ({exc}); write to a new file.") from None
    except ValueError:  # empty file
        return []
    if header != columns:
        raise SkinInferError(
            f"{path}: cannot resume, it has other columns (written with other models or an older skin-infer); "
            "write to a new file."
        )
    kept, damaged = [], set()
    for row in rows:
        if len(row) == len(columns):
            kept.append(row)
        elif row:
            damaged.add(row[0])
    if (stopped or not text.endswith(("\n", "\r"))) and kept:  # a cut can fall between an image's rows
        damaged.add(kept[-1][0])
    return [r for r in kept if r[0] not in damaged]


def _check_identity(found: set[str], identity: str, path: Path) -> None:
    other = found - {identity}
    if other:
        raise SkinInferError(
            f"{path}: cannot resume, it was written with other models or options (run {sorted(other)[0]}, this run "
            f"is {identity}); resume with the options it was written with, or write to a new file."
        )


class ResultWriter:
    """``write(result)`` per image, ``close()`` at the end; ``done`` holds the files an earlier run finished.

    ``inputs`` are the files this run is given: on a resume, an earlier failure among them is tried again (its
    record dropped, a new one appended); the failures of files not given again are kept as written.
    """

    def __init__(
        self,
        path: str | Path,
        heads: list[tuple[str, tuple[str, ...]]],
        resume: bool = False,
        identity: str = "",
        inputs: Iterable[str] = (),
    ):
        self.path = Path(path)
        self._retry = {same_file_key(f) for f in inputs}
        self.kind = self.path.suffix.lower()
        _check_target(self.path)
        self.identity = identity
        self.columns = [*csv_columns(heads), ID_COLUMN]
        self._progress = progress_path(self.path)
        self.done: set[str] = set()
        self._count = 0
        if self.kind == ".parquet":
            self._open_parquet(resume)
            return
        kept = self._previous() if resume else []
        fd = os.open(self._progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, default_mode())
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        if self.kind == ".csv":
            self._csv = csv.writer(self._fh)
            self._csv.writerow(self.columns)
            self._csv.writerows(kept)
        else:
            if self.kind == ".json":
                self._fh.write("[")
            for line in kept:
                self._write_line(line)
        self._fh.flush()

    # -- resume
    def _previous(self) -> list:
        """What an earlier run finished, as written: its progress file when it was stopped before closing, else
        the target. Failed images given again are tried again; every other record is kept and skipped."""
        source = self._progress if self._progress.is_file() else self.path
        if not source.is_file():
            return []
        text = _read_text(source)
        if self.kind == ".csv":
            rows = _csv_rows(text, source, self.columns, stopped=source == self._progress)
            at = self.columns.index
            _check_identity({r[at(ID_COLUMN)] for r in rows}, self.identity, source)
            kept = [r for r in rows if r[at("status")] == "ok" or not self._retried(_unneutral(r[0]))]
            self.done = {record_key(_unneutral(r[0]), r[at("frame")]) for r in kept}
            return kept
        if self.kind == ".json" and not text.lstrip().startswith("["):
            raise SkinInferError(f"{source}: cannot resume, it is not a list of image records; write to a new file.")
        records = _json_records(text, source)
        _check_identity({str(r.get(ID_COLUMN)) for r, _ in records}, self.identity, source)
        records = [(r, line) for r, line in records if r.get("status") == "ok" or not self._retried(r["file"])]
        self.done = {record_key(r["file"], r.get("frame")) for r, _ in records}
        return [line if line is not None else self._dumps(r) for r, line in records]

    def _retried(self, file: str) -> bool:
        return same_file_key(file) in self._retry

    # -- text formats
    @staticmethod
    def _dumps(record: dict) -> str:
        return json.dumps(record, ensure_ascii=False, allow_nan=False)  # strict JSON: NaN never reaches a file

    def _write_line(self, line: str) -> None:
        self._fh.write(line + "\n" if self.kind == ".jsonl" else ("," if self._count else "") + "\n" + line)
        self._count += 1

    def record(self, result: ImageResult) -> dict[str, Any]:
        return {**result.to_dict(), ID_COLUMN: self.identity}

    def rows(self, result: ImageResult) -> list[dict[str, Any]]:
        return [{**row, ID_COLUMN: self.identity} for row in result.csv_rows()]

    def write(self, result: ImageResult) -> None:
        """Write one image's result; ValueError (nothing written) when a value cannot be stored."""
        if self.kind == ".parquet":
            return self._write_parquet(result)
        if self.kind == ".csv":
            self._csv.writerows([_neutral(c, r.get(c, "")) for c in self.columns] for r in self.rows(result))
        else:
            self._write_line(self._dumps(self.record(result)))
        self._fh.flush()

    def close(self) -> None:
        """Finish the file and move it into place (also after Ctrl-C or SIGTERM: what was written is valid)."""
        if self.kind == ".parquet":
            return self._flush_parquet(final=True)
        if self._fh.closed:
            return
        if self.kind == ".json":
            self._fh.write("\n]\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._progress, self.path)

    # -- Parquet: a dataset folder; each part is written beside it, then renamed in
    def _open_parquet(self, resume: bool) -> None:
        try:
            import pyarrow as pa
        except ImportError:
            raise SkinInferError("--out .parquet needs pyarrow: pip install 'skin-infer[ray]' (or pyarrow).") from None
        self._pa = pa
        if not resume and self.path.exists():  # --overwrite
            shutil.rmtree(self.path)
        self.path.mkdir(exist_ok=True)
        for stale in self.path.glob(".*.tmp"):  # a part being written when a run was killed
            stale.unlink()
        if resume and any(self.path.glob("*.parquet")):
            import pyarrow.dataset as pads

            table = pads.dataset(str(self.path), format="parquet").to_table(columns=["file", "frame", ID_COLUMN])
            _check_identity({str(v) for v in table[ID_COLUMN].to_pylist()}, self.identity, self.path)
            # failed images too: parts are only ever added, so a retried failure would be a second row
            files, frames = table["file"].to_pylist(), table["frame"].to_pylist()
            self.done = {record_key(f, n) for f, n in zip(files, frames, strict=True)}
        columns = [*self.columns, "result_json"]
        self._schema = pa.schema([(c, _arrow_type(pa, c)) for c in columns])
        self._pending: list[dict[str, Any]] = []
        self._images = 0
        self._run = uuid.uuid4().hex[:8]

    def _write_parquet(self, result: ImageResult) -> None:
        text = self._dumps({k: v for k, v in self.record(result).items() if k != "timings_ms"})
        self._pending += [{**row, "result_json": text} for row in self.rows(result)]
        self._images += 1
        if self._images % PARQUET_PART_IMAGES == 0:
            self._flush_parquet()

    def _flush_parquet(self, final: bool = False) -> None:
        if not self._pending:
            return
        import pyarrow.parquet as pq

        names = self._schema.names
        table = self._pa.table({c: [_typed(c, r.get(c)) for r in self._pending] for c in names}, schema=self._schema)
        part = self.path / f"part-{self._run}-{self._count:05d}.parquet"
        tmp = self.path / f".{part.name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, part)
        self._count += 1
        self._pending = []

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_text(column: str) -> bool:
    return column in TEXT_COLUMNS or column.endswith("_label") or column in (ID_COLUMN, "result_json")


def _arrow_type(pa, column: str):
    """An explicit schema: a column empty in one part (no ITA note there) must not be typed null."""
    return pa.string() if _is_text(column) else pa.bool_() if column == "face_found" else pa.float64()


def _typed(column: str, value):
    """Parquet wants one type per column: numbers as floats (None when empty), text as strings."""
    if _is_text(column):
        return None if value in (None, "") else str(value)
    if column == "face_found":
        return bool(value)
    return None if value in (None, "") else float(value)
